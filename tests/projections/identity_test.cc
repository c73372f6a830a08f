// The identity directory: credentials, roles and authorities, the AccountChange codec, the
// `_system` drafts, and IdentityProjector folded through a real ledger (users, keyed name index,
// sessions, projects, sealing, rebuild).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <set>

#include <capnp/message.h>
#include <capnp/serialize.h>

#include "ledger/internal/lmdb_env.h"
#include "ledger/internal/view_store.h"
#include "ledger/sha256.h"
#include "projections/credentials.h"
#include "projections/identity.h"
#include "tests/support/ledger_fixture.h"

namespace trail::testing {
namespace {

using proj::AccountChangeData;
using proj::IdentityProjector;
using proj::Role;
using proj::UserRecord;
using schema::Channel;
using schema::Kind;
namespace identity = proj::identity;

constexpr std::string_view kSystem = ledger::kSystemProject;
constexpr TimeUs kHourUs = 3'600'000'000;

// ---- credentials ----

TEST(Credentials, HashThenVerifyRoundTrips) {
  ASSERT_GE(sodium_init(), 0);
  auto hash = proj::hash_password("correct horse battery staple");
  ASSERT_TRUE(hash.is_ok()) << hash.status().to_string();
  EXPECT_TRUE(hash->starts_with("$argon2id$v=19$m=")) << *hash;
  EXPECT_TRUE(proj::verify_password(*hash, "correct horse battery staple"));
  EXPECT_FALSE(proj::verify_password(*hash, "correct horse battery stapl"));
  EXPECT_FALSE(proj::verify_password(*hash, "Correct horse battery staple"));
  EXPECT_FALSE(proj::verify_password(*hash, ""));
  auto again = proj::hash_password("correct horse battery staple");
  ASSERT_TRUE(again.is_ok());
  EXPECT_NE(*hash, *again);  // Salted.
}

TEST(Credentials, RefusesEmptyAndOversizedPasswords) {
  ASSERT_GE(sodium_init(), 0);
  EXPECT_EQ(proj::hash_password("").status().code(), Code::kInvalid);
  EXPECT_EQ(proj::hash_password(std::string(4097, 'x')).status().code(), Code::kInvalid);
}

TEST(Credentials, MalformedHashesNeverVerify) {
  ASSERT_GE(sodium_init(), 0);
  auto hash = proj::hash_password("pw");
  ASSERT_TRUE(hash.is_ok());
  EXPECT_FALSE(proj::verify_password("", "pw"));
  EXPECT_FALSE(proj::verify_password("not a hash", "pw"));
  EXPECT_FALSE(proj::verify_password(hash->substr(0, hash->size() - 5), "pw"));
  EXPECT_FALSE(proj::verify_password(*hash + std::string(1, '\0'), "pw"));
  EXPECT_FALSE(proj::verify_password(*hash + std::string(200, 'A'), "pw"));
  std::string other_algorithm = *hash;
  other_algorithm.replace(0, 10, "$argon2i$");
  EXPECT_FALSE(proj::verify_password(other_algorithm, "pw"));
  std::string flipped = *hash;
  flipped.back() = flipped.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(proj::verify_password(flipped, "pw"));
}

TEST(Credentials, DummyHashIsOneValidHashThatMatchesNothingGuessable) {
  ASSERT_GE(sodium_init(), 0);
  const std::string& a = proj::dummy_hash();
  const std::string& b = proj::dummy_hash();
  EXPECT_EQ(&a, &b);  // Computed once.
  EXPECT_TRUE(a.starts_with("$argon2id$"));
  EXPECT_FALSE(proj::verify_password(a, ""));
  EXPECT_FALSE(proj::verify_password(a, "admin"));
}

TEST(Credentials, TokensAre256BitBase64UrlAndStoredAsTheirSha256) {
  ASSERT_GE(sodium_init(), 0);
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string token = proj::new_token();
    ASSERT_EQ(token.size(), 43U) << token;
    for (const char c : token) {
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_')
          << token;
    }
    EXPECT_TRUE(seen.insert(token).second);
    EXPECT_EQ(proj::token_digest(token), sha256(as_bytes(token)));
  }
  EXPECT_EQ(to_hex(proj::token_digest("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_NE(proj::token_digest("a"), proj::token_digest("b"));
}

TEST(Credentials, GeneratedPasswordsAvoidLookAlikes) {
  ASSERT_GE(sodium_init(), 0);
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const std::string pw = proj::generate_password();
    ASSERT_EQ(pw.size(), 20U);
    EXPECT_EQ(pw.find_first_of("IOlo01 "), std::string::npos) << pw;
    for (const char c : pw) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) != 0) << pw;
    EXPECT_TRUE(seen.insert(pw).second);
  }
}

// ---- roles, authorities, names ----

TEST(Roles, NamesRoundTrip) {
  const Role all[] = {Role::kMobileWorker, Role::kSupervisor,   Role::kReportViewer,
                      Role::kAuditor,      Role::kProjectAdmin, Role::kSystemAdmin};
  std::set<std::string_view> names;
  for (const Role r : all) {
    names.insert(proj::role_name(r));
    EXPECT_EQ(proj::parse_role(proj::role_name(r)), r);
  }
  EXPECT_EQ(names.size(), std::size(all));
  EXPECT_EQ(proj::role_name(Role::kSystemAdmin), "system_admin");
  EXPECT_EQ(proj::role_name(Role::kMobileWorker), "mobile_worker");
  EXPECT_FALSE(proj::parse_role("System_Admin"));
  EXPECT_FALSE(proj::parse_role("admin"));
  EXPECT_FALSE(proj::parse_role(""));
}

TEST(Roles, AuthoritiesPerRole) {
  using namespace proj;  // NOLINT: the Authority bits.
  EXPECT_EQ(authorities_of(Role::kMobileWorker), kSubmit | kViewCases);
  EXPECT_EQ(authorities_of(Role::kSupervisor), kSubmit | kViewCases | kEditCases | kViewReports);
  EXPECT_EQ(authorities_of(Role::kReportViewer), kViewReports | kExportDeidentified);
  EXPECT_EQ(authorities_of(Role::kAuditor), kViewAudit | kVerifyLedger);
  EXPECT_EQ(authorities_of(Role::kProjectAdmin), kAllAuthorities & ~std::uint32_t{kVerifyLedger});
  EXPECT_NE(authorities_of(Role::kProjectAdmin) & kManageUsers, 0U);
  EXPECT_EQ(authorities_of(Role::kSystemAdmin), std::uint32_t{kAllAuthorities});
}

TEST(Roles, UserAuthoritiesAreTheUnionOfProjectAndSystemWideRoles) {
  using namespace proj;  // NOLINT: the Authority bits.
  UserRecord u;
  u.roles["demo"] = {"mobile_worker"};
  u.roles["other"] = {"report_viewer", "auditor"};
  EXPECT_EQ(u.authorities_in("demo"), kSubmit | kViewCases);
  EXPECT_EQ(u.authorities_in("other"),
            kViewReports | kExportDeidentified | kViewAudit | kVerifyLedger);
  EXPECT_EQ(u.authorities_in("third"), 0U);
  EXPECT_TRUE(u.member_of("demo"));
  EXPECT_FALSE(u.member_of("third"));
  EXPECT_FALSE(u.is_system_admin());
  u.roles["*"] = {"auditor"};  // A system-wide auditor.
  EXPECT_EQ(u.authorities_in("third"), kViewAudit | kVerifyLedger);
  EXPECT_EQ(u.authorities_in("demo"), kSubmit | kViewCases | kViewAudit | kVerifyLedger);
  EXPECT_TRUE(u.member_of("third"));
  EXPECT_FALSE(u.is_system_admin());
  u.roles["*"].insert("system_admin");
  EXPECT_TRUE(u.is_system_admin());
  EXPECT_EQ(u.authorities_in("anything"), std::uint32_t{kAllAuthorities});
  u.disabled = true;  // Fails closed.
  EXPECT_FALSE(u.is_system_admin());
  EXPECT_EQ(u.authorities_in("demo"), 0U);
  EXPECT_FALSE(u.member_of("demo"));
}

TEST(UserNames, Validation) {
  for (const char* ok : {"admin", "a", "zanele.mokoena", "chw_017", "x@example.org", "9lives",
                         "a-b"}) {
    EXPECT_TRUE(proj::validate_user_name(ok).is_ok()) << ok;
  }
  EXPECT_TRUE(proj::validate_user_name(std::string(64, 'a')).is_ok());
  for (const std::string& bad : {std::string(), std::string(65, 'a'), std::string("Admin"),
                                std::string("a b"), std::string(".a"), std::string("-a"),
                                std::string("_a"), std::string("@a"), std::string("a/b"),
                                std::string("a\nb"), std::string("\xc3\xa9t\xc3\xa9")}) {
    EXPECT_EQ(proj::validate_user_name(bad).code(), Code::kInvalid) << bad;
  }
}

// ---- payload codec and drafts ----

TEST(AccountChangeCodec, RoundTripsDeterministically) {
  AccountChangeData c{"u-1", {{"role", "auditor"}, {"op", "grant"}, {"project", "demo"}}};
  const std::string bytes = proj::encode_account_change(c);
  EXPECT_EQ(bytes, proj::encode_account_change(c));
  auto back = proj::decode_account_change(bytes);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->user, "u-1");
  EXPECT_EQ(back->detail, c.detail);
  // Stored sorted by name.
  std::vector<std::string> order;
  for (const auto& [name, value] : back->detail) order.push_back(name);
  EXPECT_EQ(order, (std::vector<std::string>{"op", "project", "role"}));
}

std::string account_payload(const std::vector<std::pair<std::string, std::string>>& detail) {
  capnp::MallocMessageBuilder message;
  auto out = message.initRoot<schema::Payload>().initAccount();
  out.setUser("u");
  auto list = out.initDetail(static_cast<unsigned>(detail.size()));
  for (unsigned i = 0; i < detail.size(); ++i) {
    list[i].setName(detail[i].first);
    list[i].setValue(detail[i].second);
  }
  const auto words = capnp::messageToFlatArray(message);
  return std::string(reinterpret_cast<const char*>(words.asBytes().begin()),
                     words.asBytes().size());
}

TEST(AccountChangeCodec, RefusesUnsortedDuplicateOtherAndGarbage) {
  EXPECT_TRUE(proj::decode_account_change(account_payload({{"a", "1"}, {"b", "2"}})).is_ok());
  EXPECT_EQ(proj::decode_account_change(account_payload({{"b", "1"}, {"a", "2"}})).status().code(),
            Code::kCorrupt);
  EXPECT_EQ(proj::decode_account_change(account_payload({{"a", "1"}, {"a", "2"}})).status().code(),
            Code::kCorrupt);
  capnp::MallocMessageBuilder message;
  message.initRoot<schema::Payload>().initRecordRead().setWhat("case");
  const auto words = capnp::messageToFlatArray(message);
  const std::string other(reinterpret_cast<const char*>(words.asBytes().begin()),
                          words.asBytes().size());
  EXPECT_EQ(proj::decode_account_change(other).status().code(), Code::kNotFound);
  EXPECT_EQ(proj::decode_account_change("").status().code(), Code::kCorrupt);
  EXPECT_EQ(proj::decode_account_change(std::string(16, '\xff')).status().code(), Code::kCorrupt);
}

TEST(IdentityDrafts, CarryKindActorSubjectAndDetail) {
  ASSERT_GE(sodium_init(), 0);
  const std::string id = identity::new_user_id();
  ASSERT_TRUE(parse_uuid(id).has_value());
  EXPECT_EQ(format_uuid(*parse_uuid(id)), id);
  EXPECT_NE(id, identity::new_user_id());

  auto created = identity::user_created("os:root", Channel::SYSTEM, id, "bob", "$argon2id$h");
  EXPECT_EQ(created.kind, Kind::USER_CREATED);
  EXPECT_EQ(created.actor, "os:root");
  EXPECT_EQ(created.channel, Channel::SYSTEM);
  EXPECT_EQ(created.subject, parse_uuid(id));
  EXPECT_EQ(created.event_id[6] >> 4U, 7);  // Time-ordered (UUIDv7).
  EXPECT_GT(created.client_time_us, 0);
  auto c = proj::decode_account_change(created.payload);
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->user, id);
  EXPECT_EQ(c->detail, (std::map<std::string, std::string>{{"name", "bob"},
                                                            {"password_hash", "$argon2id$h"}}));

  auto sysadmin = identity::role_changed("system", Channel::SYSTEM, id, "demo", Role::kSystemAdmin,
                                         true);
  auto s = proj::decode_account_change(sysadmin.payload);
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(s->detail.at("project"), "*");
  EXPECT_EQ(s->detail.at("role"), "system_admin");
  EXPECT_EQ(s->detail.at("op"), "grant");
  auto revoke =
      identity::role_changed("system", Channel::SYSTEM, id, "demo", Role::kAuditor, false);
  EXPECT_EQ(proj::decode_account_change(revoke.payload)->detail.at("op"), "revoke");
  EXPECT_EQ(proj::decode_account_change(revoke.payload)->detail.at("project"), "demo");

  const Digest token = proj::token_digest("t");
  auto login = identity::login_succeeded(id, "phone-1", token, 42, "password", "10.0.0.1");
  EXPECT_EQ(login.kind, Kind::LOGIN_SUCCEEDED);
  EXPECT_EQ(login.actor, id);
  EXPECT_EQ(login.device_id, "phone-1");
  auto l = proj::decode_account_change(login.payload);
  ASSERT_TRUE(l.is_ok());
  EXPECT_EQ(l->detail.at("token"), to_hex(token));
  EXPECT_EQ(l->detail.at("expires_us"), "42");
  EXPECT_EQ(l->detail.at("method"), "password");
  EXPECT_EQ(l->detail.at("address"), "10.0.0.1");
  auto basic = identity::login_succeeded(id, "", std::nullopt, 0, "basic", "10.0.0.1");
  EXPECT_EQ(proj::decode_account_change(basic.payload)->detail.at("token"), "");

  auto failed = identity::login_failed("", "", "10.0.0.9", "unknown user");
  EXPECT_EQ(failed.kind, Kind::LOGIN_FAILED);
  EXPECT_FALSE(failed.actor.empty());
  EXPECT_FALSE(failed.subject.has_value());
  EXPECT_TRUE(ledger::validate_draft(failed).is_ok());

  auto project = identity::project_created("system", Channel::SYSTEM, "demo", "Demo");
  EXPECT_EQ(project.kind, Kind::PROJECT_CREATED);
  EXPECT_FALSE(project.subject.has_value());
  EXPECT_EQ(proj::decode_account_change(project.payload)->user, "");
  auto ended = identity::session_ended(id, "phone-1", token);
  EXPECT_EQ(ended.kind, Kind::SESSION_ENDED);
  EXPECT_EQ(proj::decode_account_change(ended.payload)->detail,
            (std::map<std::string, std::string>{{"reason", "logout"}, {"token", to_hex(token)}}));
}

// ---- IdentityProjector through a real ledger ----

class IdentityView : public LedgerTest {
 protected:
  std::vector<std::shared_ptr<ledger::Projector>> projectors() const override { return {view_}; }

  // Appends to `_system` and returns the seq of the last event.
  std::uint64_t system(std::vector<ledger::EventDraft> drafts) {
    auto receipts = append_ok(std::string(kSystem), std::move(drafts));
    return receipts.empty() ? 0 : receipts.back().seq;
  }
  std::string create(const std::string& name, const std::string& hash = "$argon2id$fake") {
    const std::string id = identity::new_user_id();
    system({identity::user_created("system", Channel::SYSTEM, id, name, hash)});
    return id;
  }
  std::uint64_t grant(const std::string& id, const std::string& project, Role role,
                      bool on = true) {
    return system({identity::role_changed("os:root", Channel::SYSTEM, id, project, role, on)});
  }
  std::uint64_t login(const std::string& id, const Digest& token, TimeUs expires_us) {
    return system({identity::login_succeeded(id, "phone-1", token, expires_us, "password",
                                             "127.0.0.1")});
  }
  // A draft of `kind` with a hand-made payload.
  static ledger::EventDraft crafted(Kind kind, std::string payload) {
    auto d = identity::user_disabled("system", Channel::SYSTEM, "x");
    d.kind = kind;
    d.payload = std::move(payload);
    return d;
  }
  static std::string account(const std::string& user, std::map<std::string, std::string> detail) {
    return proj::encode_account_change({user, std::move(detail)});
  }

  std::optional<UserRecord> by_name(const std::string& name) {
    auto got = view_->user_by_name(*ledger_, name);
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    return got.is_ok() ? *got : std::nullopt;
  }
  std::optional<UserRecord> by_id(const std::string& id) {
    auto got = view_->user_by_id(*ledger_, id);
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    return got.is_ok() ? *got : std::nullopt;
  }
  std::vector<UserRecord> users() {
    auto got = view_->users(*ledger_);
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    return got.is_ok() ? *got : std::vector<UserRecord>{};
  }
  std::optional<proj::SessionRecord> session(const Digest& token, TimeUs now) {
    auto got = view_->session(*ledger_, token, now);
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    return got.is_ok() ? *got : std::nullopt;
  }
  std::vector<proj::ProjectRecord> projects() {
    auto got = view_->projects(*ledger_);
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    return got.is_ok() ? *got : std::vector<proj::ProjectRecord>{};
  }
  // Every raw key and value of the view's sub-databases, as stored.
  std::vector<std::pair<std::string, std::string>> raw_rows() {
    std::vector<std::pair<std::string, std::string>> out;
    const auto tables = view_->tables();
    EXPECT_TRUE(ledger_
                    ->read_projection(*view_,
                                      [&](const ledger::ProjectionTables& t) -> Status {
                                        for (std::size_t i = 0; i < tables.size(); ++i) {
                                          TRAIL_TRY(t.scan(i, {}, [&](ByteView k, ByteView v) {
                                            out.emplace_back(as_chars(k), as_chars(v));
                                            return true;
                                          }));
                                        }
                                        return Status::ok();
                                      })
                    .is_ok());
    return out;
  }
  std::size_t session_rows() {
    std::size_t n = 0;
    EXPECT_TRUE(ledger_
                    ->read_projection(*view_,
                                      [&](const ledger::ProjectionTables& t) {
                                        return t.scan(2, {}, [&](ByteView, ByteView) {
                                          ++n;
                                          return true;
                                        });
                                      })
                    .is_ok());
    return n;
  }

  std::shared_ptr<IdentityProjector> view_ = std::make_shared<IdentityProjector>();
};

TEST_F(IdentityView, EmptyDirectoryReadsAsEmpty) {
  EXPECT_FALSE(by_name("admin"));
  EXPECT_FALSE(by_id(identity::new_user_id()));
  EXPECT_TRUE(users().empty());
  EXPECT_TRUE(projects().empty());
  EXPECT_FALSE(session(proj::token_digest("t"), now_us()));
  EXPECT_EQ(view_->tables(), (std::vector<std::string>{"identity.users", "identity.by_name",
                                                       "identity.sessions", "identity.projects",
                                                       "identity.throttle"}));
}

TEST_F(IdentityView, CreateGrantRevokeDisable) {
  const std::string id = create("zanele.mokoena", "$argon2id$one");
  auto u = by_name("zanele.mokoena");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->id, id);
  EXPECT_EQ(u->name, "zanele.mokoena");
  EXPECT_FALSE(u->disabled);
  EXPECT_EQ(u->password_hash, "$argon2id$one");
  EXPECT_EQ(u->password_seq, 1U);
  EXPECT_GT(u->created_us, 0);
  EXPECT_TRUE(u->roles.empty());
  ASSERT_TRUE(by_id(id));
  EXPECT_EQ(by_id(id)->name, "zanele.mokoena");
  EXPECT_FALSE(by_name("zanele"));

  grant(id, "demo", Role::kSupervisor);
  grant(id, "demo", Role::kAuditor);
  grant(id, "demo", Role::kSystemAdmin);  // System-wide whatever the project says.
  grant(id, "other", Role::kMobileWorker);
  u = by_id(id);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->roles, (std::map<std::string, std::set<std::string>>{
                          {"*", {"system_admin"}},
                          {"demo", {"supervisor", "auditor"}},
                          {"other", {"mobile_worker"}}}));
  EXPECT_TRUE(u->is_system_admin());

  grant(id, "demo", Role::kAuditor, false);
  grant(id, "other", Role::kMobileWorker, false);
  grant(id, "other", Role::kMobileWorker, false);  // Not held: nothing changes.
  grant(id, "demo", Role::kSystemAdmin, false);
  u = by_name("zanele.mokoena");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->roles, (std::map<std::string, std::set<std::string>>{{"demo", {"supervisor"}}}));
  EXPECT_FALSE(u->is_system_admin());

  system({identity::user_disabled("os:root", Channel::SYSTEM, id)});
  EXPECT_TRUE(by_name("zanele.mokoena")->disabled);
  EXPECT_TRUE(by_id(id)->disabled);
  EXPECT_EQ(by_id(id)->roles.size(), 1U);  // Kept, for the record; disabled users hold nothing.
  EXPECT_EQ(by_id(id)->authorities_in("demo"), 0U);

  const std::string other = create("amina");
  auto all = users();
  ASSERT_EQ(all.size(), 2U);
  std::set<std::string> ids{all[0].id, all[1].id};
  EXPECT_EQ(ids, (std::set<std::string>{id, other}));
}

TEST_F(IdentityView, PasswordChangeRecordsItsSeq) {
  const std::string id = create("bob", "$argon2id$old");
  const std::uint64_t seq =
      system({identity::password_changed("os:root", Channel::SYSTEM, id, "$argon2id$new")});
  auto u = by_name("bob");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->password_hash, "$argon2id$new");
  EXPECT_EQ(u->password_seq, seq);
  EXPECT_GT(seq, 1U);
}

TEST_F(IdentityView, FirstCreationOfANameOrIdWins) {
  const std::string first = create("bob", "$argon2id$first");
  const std::string second = create("bob", "$argon2id$second");
  EXPECT_EQ(by_name("bob")->id, first);
  EXPECT_EQ(by_name("bob")->password_hash, "$argon2id$first");
  EXPECT_FALSE(by_id(second));
  // The same id again under another name: ignored too.
  system({identity::user_created("system", Channel::SYSTEM, first, "bobby", "$argon2id$x")});
  EXPECT_FALSE(by_name("bobby"));
  EXPECT_EQ(by_id(first)->name, "bob");
  EXPECT_EQ(users().size(), 1U);
}

TEST_F(IdentityView, IgnoresWhatItCannotUseAndNeverRejects) {
  const std::string id = create("carol");
  const std::string ghost = identity::new_user_id();
  std::vector<ledger::EventDraft> junk;
  junk.push_back(identity::user_created("system", Channel::SYSTEM, ghost, "Carol Smith", "$h"));
  junk.push_back(identity::user_created("system", Channel::SYSTEM, ghost, "dave", ""));
  junk.push_back(
      crafted(Kind::USER_CREATED, account("", {{"name", "erin"}, {"password_hash", "$h"}})));
  junk.push_back(crafted(Kind::USER_CREATED, std::string(24, '\x01')));  // Not Cap'n Proto.
  junk.push_back(crafted(Kind::USER_CREATED, ""));
  junk.push_back(
      identity::role_changed("system", Channel::SYSTEM, ghost, "demo", Role::kAuditor, true));
  junk.push_back(crafted(Kind::ROLE_CHANGED, account(id, {{"op", "grant"}, {"project", "demo"},
                                                          {"role", "overlord"}})));
  junk.push_back(crafted(Kind::ROLE_CHANGED, account(id, {{"op", "toggle"}, {"project", "demo"},
                                                          {"role", "auditor"}})));
  junk.push_back(crafted(Kind::ROLE_CHANGED, account(id, {{"op", "grant"}, {"project", "_system"},
                                                          {"role", "auditor"}})));
  junk.push_back(crafted(Kind::ROLE_CHANGED, account(id, {{"op", "grant"}, {"project", "Bad Id"},
                                                          {"role", "auditor"}})));
  junk.push_back(crafted(Kind::ROLE_CHANGED, account(id, {{"op", "grant"}, {"role", "auditor"}})));
  junk.push_back(crafted(Kind::PASSWORD_CHANGED, account(id, {{"password_hash", ""}})));
  junk.push_back(crafted(Kind::USER_DISABLED, account(ghost, {})));
  junk.push_back(crafted(Kind::LOGIN_SUCCEEDED, account(id, {{"expires_us", "99999999999999999"},
                                                             {"token", "zz"}})));
  junk.push_back(crafted(Kind::LOGIN_SUCCEEDED,
                         account(id, {{"expires_us", "soon"},
                                      {"token", to_hex(proj::token_digest("a"))}})));
  junk.push_back(
      crafted(Kind::LOGIN_SUCCEEDED, account(ghost, {{"expires_us", "99999999999999999"},
                                                     {"token", to_hex(proj::token_digest("b"))}})));
  junk.push_back(identity::login_succeeded(id, "", std::nullopt, now_us() + kHourUs, "basic", ""));
  junk.push_back(
      crafted(Kind::PROJECT_CREATED, account("", {{"project", "_system"}, {"name", "x"}})));
  junk.push_back(
      crafted(Kind::PROJECT_CREATED, account("", {{"project", "Bad Id"}, {"name", "x"}})));
  junk.push_back(crafted(Kind::PROJECT_CREATED, account("", {{"name", "x"}})));
  // Kinds it does not fold, even with an account payload.
  junk.push_back(
      crafted(Kind::CASE_UPDATED, account(ghost, {{"name", "frank"}, {"password_hash", "$h"}})));
  const std::size_t count = junk.size();
  EXPECT_EQ(append_ok(std::string(kSystem), std::move(junk)).size(), count);

  auto all = users();
  ASSERT_EQ(all.size(), 1U);
  EXPECT_EQ(all[0].id, id);
  EXPECT_TRUE(all[0].roles.empty());
  EXPECT_EQ(all[0].password_hash, "$argon2id$fake");
  EXPECT_FALSE(all[0].disabled);
  EXPECT_EQ(session_rows(), 0U);
  EXPECT_TRUE(projects().empty());
  EXPECT_FALSE(session(proj::token_digest("a"), now_us()));
  EXPECT_FALSE(session(proj::token_digest("b"), now_us()));

  // Other chains are not the directory.
  append_ok("demo", {identity::user_created("system", Channel::SYSTEM, ghost, "mallory", "$h"),
                     identity::project_created("system", Channel::SYSTEM, "evil", "Evil")});
  EXPECT_FALSE(by_name("mallory"));
  EXPECT_FALSE(by_id(ghost));
  EXPECT_TRUE(projects().empty());
}

TEST_F(IdentityView, SessionsLiveUntilExpiryEndPasswordChangeOrDisable) {
  const std::string id = create("carol");
  const TimeUs now = now_us();
  const Digest t1 = proj::token_digest(proj::new_token());
  const std::uint64_t seq1 = login(id, t1, now + kHourUs);
  auto s = session(t1, now);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->user_id, id);
  EXPECT_EQ(s->user.id, id);
  EXPECT_EQ(s->user.name, "carol");
  EXPECT_EQ(s->issued_seq, seq1);
  EXPECT_GT(s->issued_us, 0);
  EXPECT_EQ(s->expires_us, now + kHourUs);
  EXPECT_TRUE(session(t1, now + kHourUs - 1));
  EXPECT_FALSE(session(t1, now + kHourUs));  // Expired.
  EXPECT_FALSE(session(proj::token_digest(proj::new_token()), now));  // Unknown.

  system({identity::session_ended(id, "phone-1", t1)});
  EXPECT_FALSE(session(t1, now));
  login(id, t1, now + kHourUs);  // A replayed log-in never reopens an ended session.
  EXPECT_FALSE(session(t1, now));

  const Digest t2 = proj::token_digest(proj::new_token());
  login(id, t2, now + kHourUs);
  EXPECT_TRUE(session(t2, now));
  system({identity::password_changed("os:root", Channel::SYSTEM, id, "$argon2id$new")});
  EXPECT_FALSE(session(t2, now));  // Issued before the password change.
  const Digest t3 = proj::token_digest(proj::new_token());
  login(id, t3, now + kHourUs);
  ASSERT_TRUE(session(t3, now));
  EXPECT_EQ(session(t3, now)->user.password_hash, "$argon2id$new");

  // Ending names the token; whoever the event names, the session ends (fails closed).
  const Digest t4 = proj::token_digest(proj::new_token());
  login(id, t4, now + kHourUs);
  system({identity::session_ended(identity::new_user_id(), "", t4)});
  EXPECT_FALSE(session(t4, now));

  system({identity::user_disabled("os:root", Channel::SYSTEM, id)});
  EXPECT_FALSE(session(t3, now));  // Its user is disabled.
}

TEST_F(IdentityView, ProjectsFirstCreationWins) {
  system({identity::project_created("os:root", Channel::SYSTEM, "demo", "Demo programme"),
          identity::project_created("os:root", Channel::SYSTEM, "demo", "Another"),
          identity::project_created("os:root", Channel::SYSTEM, "anc-2024", "ANC 2024")});
  auto all = projects();
  ASSERT_EQ(all.size(), 2U);
  EXPECT_EQ(all[0].id, "anc-2024");
  EXPECT_EQ(all[1].id, "demo");
  EXPECT_EQ(all[1].name, "Demo programme");
  EXPECT_GT(all[1].created_us, 0);
  auto demo = view_->project(*ledger_, "demo");
  ASSERT_TRUE(demo.is_ok());
  ASSERT_TRUE(demo->has_value());
  EXPECT_EQ((*demo)->name, "Demo programme");
  auto none = view_->project(*ledger_, "nope");
  ASSERT_TRUE(none.is_ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_FALSE(view_->project(*ledger_, "_system")->has_value());
}

TEST_F(IdentityView, NamesAndHashesNeverReachTheDiskInClear) {
  const std::string name = "zanele.mokoena";
  const std::string hash = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$c2VjcmV0aGFzaA";
  const std::string id = create(name, hash);
  grant(id, "demo", Role::kSupervisor);
  login(id, proj::token_digest("tok"), now_us() + kHourUs);
  system({identity::project_created("os:root", Channel::SYSTEM, "demo", "Kwazulu pilot")});
  ASSERT_EQ(by_name(name)->id, id);

  const auto rows = raw_rows();
  ASSERT_EQ(rows.size(), 4U);  // One user, its name index entry, one session, one project.
  const Digest clear_digest = sha256(as_bytes(name));
  for (const auto& [k, v] : rows) {
    for (const std::string& secret : {name, std::string("zanele"), hash, std::string("Kwazulu"),
                                      std::string("supervisor")}) {
      EXPECT_EQ(k.find(secret), std::string::npos) << secret;
      EXPECT_EQ(v.find(secret), std::string::npos) << secret;
    }
    EXPECT_NE(k, std::string(as_chars(clear_digest)));  // Keyed, not a plain hash.
  }
  // The name index key is a 32-byte MAC.
  EXPECT_EQ(std::count_if(rows.begin(), rows.end(),
                          [&](const auto& r) {
                            return r.first.size() == 32 &&
                                   r.first != std::string(as_chars(proj::token_digest("tok")));
                          }),
            1);
  // Nor anywhere in the data file.
  ledger_.reset();
  const std::string file = stored_bytes();
  EXPECT_EQ(file.find(name), std::string::npos);
  EXPECT_EQ(file.find(hash), std::string::npos);
  EXPECT_EQ(file.find("$argon2id$"), std::string::npos);
  reopen();
  EXPECT_EQ(by_name(name)->id, id);
}

TEST_F(IdentityView, RowsAreBoundToTheirKeys) {
  const std::string a = create("amina");
  const std::string b = create("bongani");
  grant(b, "demo", Role::kSystemAdmin);
  ASSERT_TRUE(by_id(a) && by_id(b));
  // Swap the two users' sealed rows, as someone with write access to the file might, to make
  // amina a system administrator.
  ledger_.reset();
  {
    ledger::detail::EnvOptions views;  // The view environment, DATA/views.
    views.views = true;
    auto env = ledger::detail::Env::open(ledger::detail::views_dir(data_dir()), views);
    ASSERT_TRUE(env.is_ok()) << env.status().to_string();
    auto users_dbi = (*env)->open_named("identity.users");
    ASSERT_TRUE(users_dbi.is_ok());
    auto txn = (*env)->begin_write();
    ASSERT_TRUE(txn.is_ok());
    auto row_a = txn->get(*users_dbi, as_bytes(a));
    auto row_b = txn->get(*users_dbi, as_bytes(b));
    ASSERT_TRUE(row_a.is_ok() && row_a->has_value() && row_b.is_ok() && row_b->has_value());
    const std::string value_a(as_chars(**row_a));
    const std::string value_b(as_chars(**row_b));
    ASSERT_TRUE(txn->put(*users_dbi, as_bytes(a), as_bytes(value_b)).is_ok());
    ASSERT_TRUE(txn->put(*users_dbi, as_bytes(b), as_bytes(value_a)).is_ok());
    ASSERT_TRUE(txn->commit().is_ok());
  }
  reopen();
  auto got = view_->user_by_id(*ledger_, a);
  ASSERT_FALSE(got.is_ok());
  EXPECT_EQ(got.status().code(), Code::kCorrupt);
  EXPECT_EQ(view_->user_by_name(*ledger_, "amina").status().code(), Code::kCorrupt);
  EXPECT_EQ(view_->users(*ledger_).status().code(), Code::kCorrupt);
  // A rebuild from the chain repairs the view.
  ASSERT_TRUE(ledger_->rebuild_projections({}).is_ok());
  ASSERT_TRUE(by_id(a));
  EXPECT_FALSE(by_id(a)->is_system_admin());
  EXPECT_TRUE(by_id(b)->is_system_admin());
}

TEST_F(IdentityView, RebuildEqualsIncremental) {
  const std::string a = create("amina");
  const std::string b = create("bongani");
  grant(a, "demo", Role::kProjectAdmin);
  grant(b, "demo", Role::kMobileWorker);
  grant(b, "demo", Role::kMobileWorker, false);
  grant(b, "other", Role::kSupervisor);
  system({identity::project_created("os:root", Channel::SYSTEM, "demo", "Demo")});
  const TimeUs now = now_us();
  const Digest t1 = proj::token_digest("one");
  const Digest t2 = proj::token_digest("two");
  login(a, t1, now + kHourUs);
  login(b, t2, now + kHourUs);
  system({identity::session_ended(b, "", t2),
          identity::password_changed("os:root", Channel::SYSTEM, a, "$argon2id$new"),
          identity::user_disabled("os:root", Channel::SYSTEM, b)});
  login(a, proj::token_digest("three"), now + kHourUs);
  append_ok("demo", make_drafts(3));  // Other chains: nothing for this view.

  auto incremental = ledger_->projection_digest();
  ASSERT_TRUE(incremental.is_ok());
  const auto before = raw_rows();
  ASSERT_TRUE(ledger_->rebuild_projections({}).is_ok());
  auto rebuilt = ledger_->projection_digest();
  ASSERT_TRUE(rebuilt.is_ok());
  EXPECT_EQ(*incremental, *rebuilt);
  EXPECT_EQ(raw_rows(), before);
  EXPECT_TRUE(session(proj::token_digest("three"), now));
  EXPECT_FALSE(session(t1, now));
  EXPECT_TRUE(by_name("bongani")->disabled);
}

}  // namespace
}  // namespace trail::testing
