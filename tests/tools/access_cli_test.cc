// trailctl org-unit / user scopes / user roles / role / case-type / policy driven as a process,
// as an operator would: each change is read back through trailctl (org-unit list, policy show,
// user show) and is exactly one `_system` event; each refusal says why on stderr, exits
// non-zero and appends nothing (the `_system` head, read through the library, stays put).
#include <gtest/gtest.h>

#include <sodium.h>

#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "projections/identity.h"
#include "tests/support/run_process.h"
#include "tests/support/temp_dir.h"
#include "tools/trailctl/open_ledger.h"

namespace trail::testing {
namespace {

namespace json = boost::json;

class TrailctlAccess : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    auto init = run({"init", "--key-name", "t"});
    ASSERT_EQ(init.exit_code, 0) << init.err;
    ASSERT_EQ(run({"project", "add", "demo", "--name", "Demo programme"}).exit_code, 0);
    ASSERT_EQ(run({"user", "add", "bob"}, "tangerine ladder quietly 83\n").exit_code, 0);
  }

  ProcessResult run(std::vector<std::string> args, const std::string& input = "") {
    std::vector<std::string> argv{TRAILCTL_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(),
                {"--data", (dir_ / "data").string(), "--keys", (dir_ / "keys").string()});
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

  // The one JSON line a command printed (empty when it printed none).
  static json::object line_of(const ProcessResult& r) {
    auto got = lines(r.out);
    EXPECT_EQ(got.size(), 1U) << r.out;
    return got.empty() ? json::object{} : got[0];
  }

  json::object ok(std::vector<std::string> args) {
    auto r = run(std::move(args));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return line_of(r);
  }

  json::object show_user(const std::string& name) { return ok({"user", "show", name}); }
  json::object policy() { return ok({"policy", "show", "--project", "demo"}); }

  // The `_system` head seq, read through the library.
  std::uint64_t system_seq() {
    auto keys = ledger::KeyRing::load((dir_ / "keys").string());
    EXPECT_TRUE(keys.is_ok()) << keys.status().to_string();
    if (!keys.is_ok()) return 0;
    ledger::LedgerOptions options;
    options.data_dir = (dir_ / "data").string();
    options.keys = *keys;
    options.read_only = true;
    auto opened = ledger::Ledger::open(options);
    EXPECT_TRUE(opened.is_ok()) << opened.status().to_string();
    if (!opened.is_ok()) return 0;
    auto head = (*opened)->head(ledger::kSystemProject);
    EXPECT_TRUE(head.is_ok()) << head.status().to_string();
    return head.is_ok() ? head->seq : 0;
  }

  // Runs a change and checks that it appended exactly one event; returns what it printed.
  json::object change(std::vector<std::string> args) {
    const std::uint64_t before = system_seq();
    auto printed = ok(std::move(args));
    EXPECT_EQ(system_seq(), before + 1);
    return printed;
  }

  // Runs a refused command: exit `code`, a message holding `says` on stderr, nothing appended.
  void refused(std::vector<std::string> args, int code, const std::string& says) {
    const std::uint64_t before = system_seq();
    std::string shown;
    for (const auto& a : args) shown += a + " ";
    auto r = run(std::move(args));
    EXPECT_EQ(r.exit_code, code) << shown << "\n" << r.err;
    EXPECT_NE(r.err.find(says), std::string::npos) << shown << "\nstderr: " << r.err;
    EXPECT_TRUE(r.out.empty()) << shown << "\nstdout: " << r.out;
    EXPECT_EQ(system_seq(), before) << shown;
  }

  void add_units() {
    change({"org-unit", "add", "--project", "demo", "--id", "north", "--name", "North region"});
    change({"org-unit", "add", "--project", "demo", "--id", "north.c1", "--name", "Clinic 1",
            "--parent", "north"});
    change({"org-unit", "add", "--project", "demo", "--id", "south", "--name", "South region"});
  }

  TempDir dir_;
};

TEST_F(TrailctlAccess, OrgUnitAddAndList) {
  auto added =
      change({"org-unit", "add", "--project", "demo", "--id", "north", "--name", "North region"});
  EXPECT_EQ(json::serialize(added), R"({"id":"north","name":"North region","parent":""})");
  added = change({"org-unit", "add", "--project", "demo", "--id", "north.c1", "--name", "Clinic 1",
                  "--parent", "north"});
  EXPECT_EQ(json::serialize(added), R"({"id":"north.c1","name":"Clinic 1","parent":"north"})");

  auto r = run({"org-unit", "list", "--project", "demo"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto units = lines(r.out);
  ASSERT_EQ(units.size(), 2U) << r.out;
  EXPECT_EQ(json::serialize(units[0]), R"({"id":"north","name":"North region","parent":""})");
  EXPECT_EQ(json::serialize(units[1]), R"({"id":"north.c1","name":"Clinic 1","parent":"north"})");
  ASSERT_EQ(run({"project", "add", "empty", "--name", "Empty"}).exit_code, 0);
  auto none = run({"org-unit", "list", "--project", "empty"});
  EXPECT_EQ(none.exit_code, 0) << none.err;
  EXPECT_TRUE(none.out.empty()) << none.out;
}

TEST_F(TrailctlAccess, OrgUnitAddRefusesWhatCannotBe) {
  change({"org-unit", "add", "--project", "demo", "--id", "north", "--name", "North region"});
  refused({"org-unit", "add", "--project", "nope", "--id", "x", "--name", "X"}, 1,
          "unknown project nope");
  refused({"org-unit", "add", "--project", "demo", "--id", "north", "--name", "Again"}, 1,
          "unit north already exists");
  refused({"org-unit", "add", "--project", "demo", "--id", "c9", "--name", "C", "--parent", "west"},
          1, "no unit west");
  refused({"org-unit", "add", "--project", "demo", "--id", "North Region", "--name", "N"}, 2,
          "unit id");
  refused({"org-unit", "add", "--project", "demo", "--id", "c9", "--name", ""}, 2, "unit name");
  refused({"org-unit", "add", "--project", "_system", "--id", "c9", "--name", "C"}, 2, "_system");
  refused({"org-unit", "add", "--project", "demo", "--id", "c9"}, 2, "--name");
  refused({"org-unit", "list", "--project", "nope"}, 1, "unknown project nope");
  EXPECT_EQ(lines(run({"org-unit", "list", "--project", "demo"}).out).size(), 1U);
}

TEST_F(TrailctlAccess, UserScopesReplaceOnlyTheScopesGiven) {
  add_units();
  auto user = show_user("bob");
  EXPECT_EQ(json::serialize(user["scopes"]), "{}");  // The whole project until set.
  EXPECT_FALSE(user["two_factor"].as_bool());

  auto set = change({"user", "scopes", "bob", "--project", "demo", "--capture", "north.c1,south",
                     "--search", "*", "--analytics", ""});
  EXPECT_EQ(json::serialize(set),
            R"({"user":"bob","project":"demo","capture":["north.c1","south"],"search":"*",)"
            R"("analytics":[]})");
  EXPECT_EQ(json::serialize(show_user("bob")["scopes"]),
            R"({"demo":{"capture":["north.c1","south"],"search":"*","analytics":[]}})");

  change({"user", "scopes", "bob", "--project", "demo", "--analytics", "north"});
  EXPECT_EQ(json::serialize(show_user("bob")["scopes"]),
            R"({"demo":{"capture":["north.c1","south"],"search":"*","analytics":["north"]}})");

  // The same again changes nothing and appends nothing.
  const std::uint64_t before = system_seq();
  auto again = run({"user", "scopes", "bob", "--project", "demo", "--analytics", "north"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("already"), std::string::npos) << again.err;
  EXPECT_EQ(system_seq(), before);

  // Back to the whole project everywhere: the user holds no scopes of the project any more.
  change({"user", "scopes", "bob", "--project", "demo", "--capture", "*", "--analytics", "*"});
  EXPECT_EQ(json::serialize(show_user("bob")["scopes"]), "{}");
}

TEST_F(TrailctlAccess, UserScopesRefusesUnknownsAndMalformedLists) {
  add_units();
  refused({"user", "scopes", "bob", "--project", "demo"}, 2, "--capture, --search, --analytics");
  refused({"user", "scopes", "bob", "--project", "demo", "--capture", "west"}, 1,
          "unknown unit west");
  refused({"user", "scopes", "bob", "--project", "demo", "--capture", "north", "--search",
           "north,west"},
          1, "unknown unit west");
  refused({"user", "scopes", "bob", "--project", "nope", "--capture", "north"}, 1,
          "unknown project nope");
  refused({"user", "scopes", "nobody", "--project", "demo", "--capture", "north"}, 1,
          "no user nobody");
  refused({"user", "scopes", "bob", "--project", "demo", "--capture", "north,"}, 2, "--capture");
  refused({"user", "scopes", "bob", "--project", "demo", "--search", "*,north"}, 2, "--search");
  refused({"user", "scopes", "Bob Smith", "--project", "demo", "--search", "*"}, 2, "name");
  EXPECT_EQ(json::serialize(show_user("bob")["scopes"]), "{}");
}

TEST_F(TrailctlAccess, RoleDefineThenUserRolesReplaceTheRolesInTheProject) {
  auto defined = change({"role", "define", "--project", "demo", "--name", "data_clerk",
                         "--authority", "submit", "--authority", "view_cases", "--reach", "own"});
  EXPECT_EQ(json::serialize(defined),
            R"({"project":"demo","role":"data_clerk","authorities":["submit","view_cases"],)"
            R"("reach":"own"})");
  change(
      {"role", "define", "--project", "demo", "--name", "analyst", "--authority", "view_reports"});
  EXPECT_EQ(json::serialize(policy()["roles"]),
            R"({"analyst":{"authorities":["view_reports"],"reach":"scope"},)"
            R"("data_clerk":{"authorities":["submit","view_cases"],"reach":"own"}})");
  // Redefining one of the project's own roles is a change.
  change({"role", "define", "--project", "demo", "--name", "analyst", "--authority", "view_reports",
          "--authority", "export_deidentified", "--reach", "unit"});
  EXPECT_EQ(json::serialize(policy()["roles"].as_object()["analyst"]),
            R"({"authorities":["view_reports","export_deidentified"],"reach":"unit"})");

  auto set = change({"user", "roles", "bob", "--project", "demo", "--role", "supervisor", "--role",
                     "data_clerk"});
  EXPECT_EQ(json::serialize(set),
            R"({"user":"bob","project":"demo","roles":["data_clerk","supervisor"]})");
  EXPECT_EQ(json::serialize(show_user("bob")["roles"]), R"({"demo":["data_clerk","supervisor"]})");
  change({"user", "roles", "bob", "--project", "demo", "--role", "analyst"});
  EXPECT_EQ(json::serialize(show_user("bob")["roles"]), R"({"demo":["analyst"]})");
  change({"user", "roles", "bob", "--project", "demo", "--none"});
  EXPECT_EQ(json::serialize(show_user("bob")["roles"]), "{}");
}

// As `user grant`: a project that holds events but was never opened with `project add` takes
// built-in roles; it has no units, own roles or policy, so scopes there are refused.
TEST_F(TrailctlAccess, AProjectThatOnlyHoldsEventsTakesBuiltInRoles) {
  auto appended = run({"append", "--project", "legacy"},
                      R"({"event_id":"7f1e2a40-0000-4000-8000-00000000000b","kind":"case.created",)"
                      R"("case_id":"7f1e2a40-0000-4000-8000-00000000000a","actor":"chw-1",)"
                      R"("device_id":"phone-1","client_time":"2024-05-01T09:30:00Z",)"
                      R"("fields":{"a":"1"}})"
                      "\n");
  ASSERT_EQ(appended.exit_code, 0) << appended.err;
  change({"user", "roles", "bob", "--project", "legacy", "--role", "auditor"});
  EXPECT_EQ(json::serialize(show_user("bob")["roles"]), R"({"legacy":["auditor"]})");
  refused({"user", "roles", "bob", "--project", "legacy", "--role", "clerk"}, 1,
          "no role clerk in project legacy");
  refused({"user", "scopes", "bob", "--project", "legacy", "--capture", "*"}, 1,
          "unknown project legacy");
  refused({"policy", "set", "--project", "legacy", "--require-2fa", "true"}, 1,
          "unknown project legacy");
}

TEST_F(TrailctlAccess, RoleDefineRefusesBuiltInNamesAndUnknownAuthorities) {
  refused({"role", "define", "--project", "demo", "--name", "supervisor", "--authority", "submit"},
          2, "built-in role");
  refused(
      {"role", "define", "--project", "demo", "--name", "system_admin", "--authority", "submit"}, 2,
      "built-in role");
  refused({"role", "define", "--project", "demo", "--name", "clerk", "--authority", "fly"}, 2,
          "unknown authority fly");
  refused({"role", "define", "--project", "demo", "--name", "clerk", "--authority", "submit",
           "--reach", "everyone"},
          2, "--reach");
  refused({"role", "define", "--project", "demo", "--name", "clerk"}, 2, "--authority");
  refused({"role", "define", "--project", "demo", "--name", "Clerk!", "--authority", "submit"}, 2,
          "role name");
  refused({"role", "define", "--project", "nope", "--name", "clerk", "--authority", "submit"}, 1,
          "unknown project nope");
  EXPECT_EQ(json::serialize(policy()["roles"]), "{}");
}

TEST_F(TrailctlAccess, UserRolesRefusesSystemAdminUnknownRolesAndNoRoles) {
  change({"user", "roles", "bob", "--project", "demo", "--role", "auditor"});
  refused({"user", "roles", "bob", "--project", "demo", "--role", "system_admin"}, 2,
          "system_admin is system-wide");
  refused({"user", "roles", "bob", "--project", "demo", "--role", "clerk"}, 1,
          "no role clerk in project demo");
  refused({"user", "roles", "bob", "--project", "demo"}, 2, "--none");  // No accidents.
  refused({"user", "roles", "bob", "--project", "demo", "--none", "--role", "auditor"}, 2,
          "--none");
  refused({"user", "roles", "bob", "--project", "demo", "--role", "Boss Man"}, 2, "role");
  refused({"user", "roles", "bob", "--project", "nope", "--role", "auditor"}, 1,
          "unknown project nope");
  refused({"user", "roles", "nobody", "--project", "demo", "--role", "auditor"}, 1,
          "no user nobody");
  // A role of another project is not one of this project.
  ASSERT_EQ(run({"project", "add", "other", "--name", "Other"}).exit_code, 0);
  change({"role", "define", "--project", "other", "--name", "clerk", "--authority", "submit"});
  refused({"user", "roles", "bob", "--project", "demo", "--role", "clerk"}, 1,
          "no role clerk in project demo");
  EXPECT_EQ(json::serialize(show_user("bob")["roles"]), R"({"demo":["auditor"]})");
}

TEST_F(TrailctlAccess, CaseTypeSet) {
  auto set = change(
      {"case-type", "set", "--project", "demo", "--type", "pregnancy", "--access", "protected"});
  EXPECT_EQ(json::serialize(set),
            R"({"project":"demo","case_type":"pregnancy","access":"protected"})");
  change({"case-type", "set", "--project", "demo", "--type", "hiv", "--access", "closed"});
  change({"case-type", "set", "--project", "demo", "--type", "pregnancy", "--access", "audited"});
  EXPECT_EQ(json::serialize(policy()["case_types"]), R"({"hiv":"closed","pregnancy":"audited"})");
  change({"case-type", "set", "--project", "demo", "--type", "hiv", "--access", "open"});
  EXPECT_EQ(json::serialize(policy()["case_types"]), R"({"pregnancy":"audited"})");

  refused({"case-type", "set", "--project", "demo", "--type", "hiv", "--access", "secret"}, 2,
          "--access");
  refused({"case-type", "set", "--project", "demo", "--type", "HIV Care", "--access", "closed"}, 2,
          "case type");
  refused({"case-type", "set", "--project", "nope", "--type", "hiv", "--access", "closed"}, 1,
          "unknown project nope");
  EXPECT_EQ(json::serialize(policy()["case_types"]), R"({"pregnancy":"audited"})");
}

TEST_F(TrailctlAccess, PolicySetAndShow) {
  EXPECT_EQ(json::serialize(policy()),
            R"({"project":"demo","require_2fa":false,"idle_timeout_minutes":30,)"
            R"("session_max_hours":12,"break_glass_minutes":60,"restrict_superusers":false,)"
            R"("roles":{},"case_types":{}})");
  auto set = change({"policy", "set", "--project", "demo", "--require-2fa", "true",
                     "--idle-timeout-minutes", "15", "--restrict-superusers", "true"});
  EXPECT_TRUE(set["require_2fa"].as_bool());
  EXPECT_EQ(set["idle_timeout_minutes"].as_int64(), 15);
  change({"policy", "set", "--project", "demo", "--session-max-hours", "720",
          "--break-glass-minutes", "1"});
  auto shown = policy();
  EXPECT_TRUE(shown["require_2fa"].as_bool());
  EXPECT_EQ(shown["idle_timeout_minutes"].as_int64(), 15);
  EXPECT_EQ(shown["session_max_hours"].as_int64(), 720);
  EXPECT_EQ(shown["break_glass_minutes"].as_int64(), 1);
  EXPECT_TRUE(shown["restrict_superusers"].as_bool());

  const std::string before = json::serialize(policy());
  refused({"policy", "set", "--project", "demo"}, 2, "at least one policy option");
  refused({"policy", "set", "--project", "demo", "--idle-timeout-minutes", "0"}, 2,
          "idle_timeout_minutes must be a whole number from 1 to 1440");
  refused({"policy", "set", "--project", "demo", "--idle-timeout-minutes", "1441"}, 2,
          "idle_timeout_minutes");
  refused({"policy", "set", "--project", "demo", "--session-max-hours", "721"}, 2,
          "session_max_hours");
  refused({"policy", "set", "--project", "demo", "--break-glass-minutes", "-5"}, 2,
          "break_glass_minutes");
  refused({"policy", "set", "--project", "demo", "--break-glass-minutes", "10m"}, 2,
          "break_glass_minutes");
  refused({"policy", "set", "--project", "demo", "--require-2fa", "yes"}, 2,
          "require_2fa must be true or false");
  // One bad value refuses the whole change.
  refused({"policy", "set", "--project", "demo", "--require-2fa", "false", "--restrict-superusers",
           "maybe"},
          2, "restrict_superusers");
  refused({"policy", "set", "--project", "nope", "--require-2fa", "true"}, 1,
          "unknown project nope");
  refused({"policy", "show", "--project", "nope"}, 1, "unknown project nope");
  EXPECT_EQ(json::serialize(policy()), before);
}

TEST_F(TrailctlAccess, UserShowSaysWhetherTwoFactorLogInIsOn) {
  EXPECT_FALSE(show_user("bob")["two_factor"].as_bool());
  const std::string id(show_user("bob")["id"].as_string());
  {
    tools::CommonOptions common;
    common.data_dir = (dir_ / "data").string();
    common.keys_dir = (dir_ / "keys").string();
    auto opened = tools::open_ledger(common, /*read_only=*/false);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    std::vector<ledger::EventDraft> batch;
    batch.push_back(proj::identity::totp_enrolled(id, "JBSWY3DPEHPK3PXP"));
    batch.push_back(proj::identity::totp_confirmed(id, {std::string(64, 'a')}, 1));
    auto appended =
        opened->ledger->append(std::string(ledger::kSystemProject), std::move(batch)).get();
    ASSERT_TRUE(appended.is_ok()) << appended.status().to_string();
  }
  auto shown = show_user("bob");
  EXPECT_TRUE(shown["two_factor"].as_bool());
  const std::string text = json::serialize(shown);
  EXPECT_EQ(text.find("JBSWY3DPEHPK3PXP"), std::string::npos);  // Never the secret.
  EXPECT_EQ(text.find(std::string(64, 'a')), std::string::npos);
}

}  // namespace
}  // namespace trail::testing
