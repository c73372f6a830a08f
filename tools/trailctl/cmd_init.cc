// trailctl init: a fresh key directory and a data directory bound to it, holding only the first
// system administrator (with a generated password, printed once).
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "projections/credentials.h"
#include "projections/identity.h"
#include "tools/trailctl/commands.h"
#include "tools/trailctl/open_ledger.h"

namespace trail::tools {
namespace fs = std::filesystem;

namespace {

// Appends the first system administrator `name` to `_system` (user and role in one batch) and
// returns its password. Errors: as hash_password and Ledger::append.
Result<std::string> create_admin(const CommonOptions& common, const std::string& name,
                                 std::string& user_id) {
  TRAIL_ASSIGN_OR_RETURN(auto opened, open_ledger(common, /*read_only=*/false));
  std::string password = proj::generate_password();
  TRAIL_ASSIGN_OR_RETURN(const std::string hash, proj::hash_password(password));
  user_id = proj::identity::new_user_id();
  constexpr const char* kActor = "system";
  std::vector<ledger::EventDraft> batch;
  batch.push_back(
      proj::identity::user_created(kActor, schema::Channel::SYSTEM, user_id, name, hash));
  batch.push_back(proj::identity::role_changed(kActor, schema::Channel::SYSTEM, user_id,
                                               proj::kAllProjects, proj::Role::kSystemAdmin,
                                               /*grant=*/true));
  for (auto& d : batch) d.device_id = "trailctl";
  auto receipts =
      opened.ledger->append(std::string(ledger::kSystemProject), std::move(batch)).get();
  if (!receipts.is_ok()) return std::move(receipts).take_status();
  // Pair check: the view now knows the administrator under that name, with that role.
  TRAIL_ASSIGN_OR_RETURN(auto stored, opened.identity->user_by_name(*opened.ledger, name));
  TRAIL_ASSERT(stored.has_value() && stored->id == user_id && stored->is_system_admin());
  return password;
}

}  // namespace

int run_init(const CommonOptions& common, const std::string& key_name_in,
             const std::string& admin_name) {
  std::error_code ec;
  if (fs::exists(fs::path(common.data_dir) / "data.mdb", ec)) {
    return fail(common.data_dir + " is already initialised");
  }
  if (Status s = proj::validate_user_name(admin_name); !s.is_ok()) {
    return fail("--admin: " + s.detail());
  }
  std::string key_name = key_name_in;
  if (key_name.empty()) {
    char host[256] = {};
    key_name = ::gethostname(host, sizeof host - 1) == 0 && host[0] != '\0' ? host : "trail";
  }
  if (Status s = ledger::KeyRing::create(common.keys_dir, key_name); !s.is_ok()) {
    return fail(s.detail());
  }
  auto keys = ledger::KeyRing::load(common.keys_dir);
  if (!keys.is_ok()) return fail(keys.status().detail());
  if (Status s = ledger::Ledger::create(common.data_dir, **keys); !s.is_ok()) {
    return fail(s.detail());
  }
  std::printf("initialised data directory %s\n", common.data_dir.c_str());
  std::printf("created keys in %s (key name %s); keep this directory secret and backed up "
              "apart from the data\n",
              common.keys_dir.c_str(), key_name.c_str());
  std::string admin_id;
  auto password = create_admin(common, admin_name, admin_id);
  if (!password.is_ok()) {
    return fail("cannot create the system administrator: " + password.status().to_string());
  }
  std::printf("created system administrator %s (user id %s)\n", admin_name.c_str(),
              admin_id.c_str());
  // Shown once and stored only as its Argon2id hash: change it with `trailctl user passwd`.
  std::printf("admin password: %s\n", password->c_str());
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace trail::tools
