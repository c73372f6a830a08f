// trailctl init: a fresh key directory and an empty data directory bound to it.
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "tools/trailctl/commands.h"

namespace trail::tools {
namespace fs = std::filesystem;

int run_init(const CommonOptions& common, const std::string& key_name_in) {
  std::error_code ec;
  if (fs::exists(fs::path(common.data_dir) / "data.mdb", ec)) {
    return fail(common.data_dir + " is already initialised");
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
  return kExitOk;
}

}  // namespace trail::tools
