// trailctl init / user / project driven as a process, as an operator would: the first system
// administrator, user administration with passwords on standard input, and project spaces.
// What trailctl stores is checked through the library too (the identity view of the ledger).
#include <gtest/gtest.h>

#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "projections/credentials.h"
#include "projections/identity.h"
#include "tests/support/run_process.h"
#include "tests/support/temp_dir.h"

namespace trail::testing {
namespace {

namespace json = boost::json;

class TrailctlUsers : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    init_ = run({"init", "--key-name", "t"});
    ASSERT_EQ(init_.exit_code, 0) << init_.err;
    ASSERT_TRUE(run({"project", "add", "demo", "--name", "Demo programme"}).exit_code == 0);
  }

  ProcessResult run(std::vector<std::string> args, const std::string& input = "",
                    const std::string& dir = "") {
    const std::string base = dir.empty() ? dir_.path().string() : dir;
    std::vector<std::string> argv{TRAILCTL_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--data", base + "/data", "--keys", base + "/keys"});
    return run_process(argv, input);
  }

  static std::vector<json::object> lines(const std::string& text) {
    std::vector<json::object> out;
    std::istringstream in(text);
    std::string l;
    while (std::getline(in, l)) {
      if (!l.empty()) out.push_back(json::parse(l).as_object());
    }
    return out;
  }

  json::object show(const std::string& name) {
    auto r = run({"user", "show", name});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto got = lines(r.out);
    EXPECT_EQ(got.size(), 1U) << r.out;
    return got.empty() ? json::object{} : got[0];
  }

  // The stored user record, read through the library (trailctl never prints hashes).
  std::optional<proj::UserRecord> stored_user(const std::string& name,
                                              const std::string& dir = "") {
    const std::string base = dir.empty() ? dir_.path().string() : dir;
    auto keys = ledger::KeyRing::load(base + "/keys");
    EXPECT_TRUE(keys.is_ok()) << keys.status().to_string();
    if (!keys.is_ok()) return std::nullopt;
    auto identity = std::make_shared<proj::IdentityProjector>();
    ledger::LedgerOptions options;
    options.data_dir = base + "/data";
    options.keys = *keys;
    options.read_only = true;
    options.projectors = {identity};
    auto opened = ledger::Ledger::open(options);
    EXPECT_TRUE(opened.is_ok()) << opened.status().to_string();
    if (!opened.is_ok()) return std::nullopt;
    auto user = identity->user_by_name(**opened, name);
    EXPECT_TRUE(user.is_ok()) << user.status().to_string();
    return user.is_ok() ? *user : std::nullopt;
  }

  static std::string admin_password(const std::string& init_out) {
    std::smatch m;
    static const std::regex line("(^|\n)admin password: ([^\n]*)\n");
    if (!std::regex_search(init_out, m, line)) return "";
    return m[2];
  }

  TempDir dir_;
  ProcessResult init_;
};

TEST_F(TrailctlUsers, InitCreatesTheFirstSystemAdministrator) {
  // The existing lines stay.
  EXPECT_NE(init_.out.find("initialised data directory "), std::string::npos) << init_.out;
  EXPECT_NE(init_.out.find("created keys in "), std::string::npos) << init_.out;
  const std::string password = admin_password(init_.out);
  ASSERT_EQ(password.size(), 20U) << init_.out;
  std::size_t shown = 0;
  for (std::size_t at = init_.out.find(password); at != std::string::npos;
       at = init_.out.find(password, at + 1)) {
    ++shown;
  }
  EXPECT_EQ(shown, 1U);  // Printed once.
  EXPECT_EQ(init_.out.find("$argon2id$"), std::string::npos);

  auto admin = stored_user("admin");
  ASSERT_TRUE(admin);
  EXPECT_TRUE(proj::verify_password(admin->password_hash, password));
  EXPECT_FALSE(proj::verify_password(admin->password_hash, password + "x"));
  EXPECT_TRUE(admin->is_system_admin());
  EXPECT_FALSE(admin->disabled);

  auto shown_admin = show("admin");
  EXPECT_EQ(shown_admin["id"].as_string(), admin->id);
  EXPECT_EQ(shown_admin["roles"].as_object().at("*").as_array().at(0).as_string(), "system_admin");
  EXPECT_FALSE(shown_admin.contains("password_hash"));

  // The chain holds the administrator's events and verifies.
  auto verified = run_process({TRAILCTL_PATH, "verify", "--data", (dir_ / "data").string(),
                               "--keys", (dir_ / "keys").string(), "--project", "_system"});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
}

TEST_F(TrailctlUsers, InitTakesAnotherAdministratorNameAndRefusesABadOne) {
  TempDir other;
  auto r = run({"init", "--admin", "root@clinic", "--key-name", "t"}, "", other.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string password = admin_password(r.out);
  ASSERT_EQ(password.size(), 20U) << r.out;
  auto root = stored_user("root@clinic", other.path().string());
  ASSERT_TRUE(root);
  EXPECT_TRUE(proj::verify_password(root->password_hash, password));
  EXPECT_FALSE(stored_user("admin", other.path().string()));
  EXPECT_NE(admin_password(init_.out), password);

  TempDir bad;
  auto refused = run({"init", "--admin", "Not Valid"}, "", bad.path().string());
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("--admin"), std::string::npos) << refused.err;
  EXPECT_FALSE(std::filesystem::exists(bad / "data" / "data.mdb"));
}

TEST_F(TrailctlUsers, UserAddTakesThePasswordFromStandardInput) {
  auto r = run({"user", "add", "zanele", "--project", "demo", "--role", "supervisor"},
               "correct horse battery staple 42\nsecond line\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string id = r.out;
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(id.back(), '\n');
  id.pop_back();
  EXPECT_TRUE(parse_uuid(id).has_value()) << id;

  auto shown = show("zanele");
  EXPECT_EQ(shown["id"].as_string(), id);
  EXPECT_EQ(shown["name"].as_string(), "zanele");
  EXPECT_FALSE(shown["disabled"].as_bool());
  EXPECT_EQ(json::serialize(shown["roles"]), R"({"demo":["supervisor"]})");

  auto stored = stored_user("zanele");
  ASSERT_TRUE(stored);
  EXPECT_TRUE(proj::verify_password(stored->password_hash, "correct horse battery staple 42"));
  EXPECT_FALSE(proj::verify_password(stored->password_hash, "correct horse battery staple 42\n"));

  // A password line ending in CR LF loses both.
  ASSERT_EQ(run({"user", "add", "amina"}, "tangerine ladder quietly 83\r\n").exit_code, 0);
  EXPECT_TRUE(proj::verify_password(stored_user("amina")->password_hash, "tangerine ladder quietly 83"));
  EXPECT_TRUE(stored_user("amina")->roles.empty());
}

TEST_F(TrailctlUsers, UserAddRefusesADuplicateAnEmptyPasswordAndBadInput) {
  ASSERT_EQ(run({"user", "add", "bob"}, "first purple walrus dances 17\n").exit_code, 0);
  const std::string id = std::string(show("bob")["id"].as_string());
  auto dup = run({"user", "add", "bob"}, "second amber heron sleeps 29\n");
  EXPECT_EQ(dup.exit_code, 1);
  EXPECT_NE(dup.err.find("already exists"), std::string::npos) << dup.err;
  EXPECT_EQ(show("bob")["id"].as_string(), id);
  EXPECT_TRUE(proj::verify_password(stored_user("bob")->password_hash, "first purple walrus dances 17"));

  auto empty = run({"user", "add", "carol"}, "\nsecret river stone 4455\n");
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_NE(empty.err.find("empty password"), std::string::npos) << empty.err;
  EXPECT_EQ(run({"user", "add", "carol"}, "").exit_code, 1);
  EXPECT_FALSE(stored_user("carol"));

  EXPECT_EQ(run({"user", "add", "Carol Smith"}, "tangerine ladder quietly 83\n").exit_code, 2);
  EXPECT_EQ(run({"user", "add", "dave", "--project", "demo", "--role", "boss"}, "tangerine ladder quietly 83\n").exit_code,
            2);
  auto unknown_project =
      run({"user", "add", "dave", "--project", "nope", "--role", "auditor"}, "tangerine ladder quietly 83\n");
  EXPECT_EQ(unknown_project.exit_code, 1);
  EXPECT_NE(unknown_project.err.find("unknown project nope"), std::string::npos)
      << unknown_project.err;
  EXPECT_EQ(run({"user", "add", "dave", "--role", "auditor"}, "tangerine ladder quietly 83\n").exit_code, 2);  // No project.
  EXPECT_FALSE(stored_user("dave"));

  // Several roles in one batch; system_admin takes no project.
  auto many = run({"user", "add", "erin", "--role", "auditor", "--project", "demo", "--role",
                   "system_admin", "--role", "mobile_worker", "--project", "demo"},
                  "violet harbour lamps 5150\n");
  ASSERT_EQ(many.exit_code, 0) << many.err;
  EXPECT_EQ(json::serialize(show("erin")["roles"]),
            R"({"*":["system_admin"],"demo":["auditor","mobile_worker"]})");  // By name.
}

TEST_F(TrailctlUsers, DisableGrantRevoke) {
  ASSERT_EQ(run({"user", "add", "bob"}, "tangerine ladder quietly 83\n").exit_code, 0);
  auto granted = run({"user", "grant", "bob", "--project", "demo", "--role", "report_viewer"});
  ASSERT_EQ(granted.exit_code, 0) << granted.err;
  EXPECT_EQ(json::serialize(show("bob")["roles"]), R"({"demo":["report_viewer"]})");
  auto sysadmin = run({"user", "grant", "bob", "--role", "system_admin"});
  ASSERT_EQ(sysadmin.exit_code, 0) << sysadmin.err;
  EXPECT_EQ(json::serialize(show("bob")["roles"]),
            R"({"*":["system_admin"],"demo":["report_viewer"]})");
  EXPECT_TRUE(stored_user("bob")->is_system_admin());

  ASSERT_EQ(
      run({"user", "revoke", "bob", "--project", "demo", "--role", "report_viewer"}).exit_code, 0);
  EXPECT_EQ(json::serialize(show("bob")["roles"]), R"({"*":["system_admin"]})");
  ASSERT_EQ(run({"user", "revoke", "bob", "--role", "system_admin"}).exit_code, 0);
  EXPECT_EQ(json::serialize(show("bob")["roles"]), "{}");
  EXPECT_FALSE(stored_user("bob")->is_system_admin());

  EXPECT_EQ(run({"user", "grant", "bob", "--project", "demo", "--role", "overlord"}).exit_code, 2);
  EXPECT_EQ(run({"user", "grant", "bob", "--project", "demo"}).exit_code, 2);  // No role.
  EXPECT_EQ(run({"user", "grant", "bob", "--project", "nope", "--role", "auditor"}).exit_code, 1);
  EXPECT_EQ(run({"user", "grant", "bob", "--project", "demo", "--role", "system_admin"}).exit_code,
            2);
  EXPECT_EQ(run({"user", "grant", "nobody", "--project", "demo", "--role", "auditor"}).exit_code,
            1);
  // A project with events but not opened through `project add` is a project too.
  auto appended = run({"append", "--project", "legacy"},
                      R"({"event_id":"7f1e2a40-0000-4000-8000-00000000000b","kind":"case.created",)"
                      R"("case_id":"7f1e2a40-0000-4000-8000-00000000000a","actor":"chw-1",)"
                      R"("device_id":"phone-1","client_time":"2024-05-01T09:30:00Z",)"
                      R"("fields":{"a":"1"}})"
                      "\n");
  ASSERT_EQ(appended.exit_code, 0) << appended.err;
  EXPECT_EQ(run({"user", "grant", "bob", "--project", "legacy", "--role", "auditor"}).exit_code, 0);
  EXPECT_EQ(json::serialize(show("bob")["roles"]), R"({"legacy":["auditor"]})");

  auto disabled = run({"user", "disable", "bob"});
  ASSERT_EQ(disabled.exit_code, 0) << disabled.err;
  EXPECT_TRUE(show("bob")["disabled"].as_bool());
  EXPECT_TRUE(stored_user("bob")->disabled);
  EXPECT_EQ(run({"user", "disable", "nobody"}).exit_code, 1);
  EXPECT_EQ(run({"user", "show", "nobody"}).exit_code, 1);
}

TEST_F(TrailctlUsers, PasswdChangesTheHash) {
  ASSERT_EQ(run({"user", "add", "bob"}, "old rusty gate opens 1984\n").exit_code, 0);
  const auto before = stored_user("bob");
  ASSERT_TRUE(before);
  auto r = run({"user", "passwd", "bob"}, "new violet kite drifts 2077\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto after = stored_user("bob");
  ASSERT_TRUE(after);
  EXPECT_NE(after->password_hash, before->password_hash);
  EXPECT_GT(after->password_seq, before->password_seq);
  EXPECT_TRUE(proj::verify_password(after->password_hash, "new violet kite drifts 2077"));
  EXPECT_FALSE(proj::verify_password(after->password_hash, "old rusty gate opens 1984"));
  EXPECT_EQ(run({"user", "passwd", "bob"}, "\n").exit_code, 1);
  EXPECT_EQ(stored_user("bob")->password_hash, after->password_hash);
  EXPECT_EQ(run({"user", "passwd", "nobody"}, "tangerine ladder quietly 83\n").exit_code, 1);
}

TEST_F(TrailctlUsers, WeakNamedAndReusedPasswordsAreRefused) {
  for (const char* weak : {"short pw 1\n", "password12345\n", "qwertyuiop123\n"}) {
    auto r = run({"user", "add", "bob"}, weak);
    EXPECT_EQ(r.exit_code, 1) << weak;
    EXPECT_FALSE(r.err.empty());
    EXPECT_FALSE(stored_user("bob")) << weak;
  }
  auto named = run({"user", "add", "zanele"}, "Zanele likes long walks 99\n");
  EXPECT_EQ(named.exit_code, 1);
  EXPECT_NE(named.err.find("user name"), std::string::npos) << named.err;
  ASSERT_EQ(run({"user", "add", "bob"}, "old rusty gate opens 1984\n").exit_code, 0);
  const auto before = stored_user("bob");
  auto reused = run({"user", "passwd", "bob"}, "old rusty gate opens 1984\n");
  EXPECT_EQ(reused.exit_code, 1);
  EXPECT_NE(reused.err.find("last 5"), std::string::npos) << reused.err;
  EXPECT_EQ(run({"user", "passwd", "bob"}, "password12345\n").exit_code, 1);
  EXPECT_EQ(stored_user("bob")->password_hash, before->password_hash);
}

TEST_F(TrailctlUsers, ListShowsEveryUserButNoSecrets) {
  ASSERT_EQ(
      run({"user", "add", "zanele", "--project", "demo", "--role", "auditor"}, "first purple walrus dances 17\n").exit_code,
      0);
  ASSERT_EQ(run({"user", "add", "bob"}, "second amber heron sleeps 29\n").exit_code, 0);
  auto r = run({"user", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto users = lines(r.out);
  ASSERT_EQ(users.size(), 3U);
  EXPECT_EQ(users[0]["name"].as_string(), "admin");
  EXPECT_EQ(users[1]["name"].as_string(), "bob");
  EXPECT_EQ(users[2]["name"].as_string(), "zanele");
  for (auto& u : users) {
    EXPECT_TRUE(u.contains("id") && u.contains("disabled") && u.contains("roles"));
    EXPECT_FALSE(u.contains("password_hash"));
  }
  EXPECT_EQ(r.out.find("argon2"), std::string::npos);
  EXPECT_EQ(r.out.find("purple walrus"), std::string::npos);
  // Listing names is a read of personal data: it is in the access audit.
  auto reads = lines(run({"audit", "access", "--project", "_system"}).out);
  ASSERT_FALSE(reads.empty());
  EXPECT_EQ(reads.back()["what"].as_string(), "user");
}

TEST_F(TrailctlUsers, ProjectAddAndList) {
  auto r = run({"project", "add", "anc-2024", "--name", "Antenatal care 2024"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines(r.out).at(0)["id"].as_string(), "anc-2024");
  auto listed = lines(run({"project", "list"}).out);
  ASSERT_EQ(listed.size(), 2U);
  EXPECT_EQ(listed[0]["id"].as_string(), "anc-2024");
  EXPECT_EQ(listed[0]["name"].as_string(), "Antenatal care 2024");
  EXPECT_EQ(listed[1]["id"].as_string(), "demo");
  EXPECT_EQ(listed[1]["name"].as_string(), "Demo programme");

  auto dup = run({"project", "add", "demo", "--name", "Again"});
  EXPECT_EQ(dup.exit_code, 1);
  EXPECT_NE(dup.err.find("already exists"), std::string::npos) << dup.err;
  EXPECT_EQ(run({"project", "add", "_system", "--name", "System"}).exit_code, 2);
  EXPECT_EQ(run({"project", "add", "Bad Id", "--name", "Bad"}).exit_code, 2);
  EXPECT_EQ(run({"project", "add", "x"}).exit_code, 2);  // --name is required.
  EXPECT_EQ(lines(run({"project", "list"}).out).size(), 2U);
  EXPECT_EQ(lines(run({"project", "list"}).out)[1]["name"].as_string(), "Demo programme");
}

}  // namespace
}  // namespace trail::testing
