// Log-in and account security: POST /v1/auth/login (password, then a TOTP or recovery code when
// the account has two-factor log-in), /v1/auth/logout, /v1/auth/password, and TOTP enrolment
// (/v1/auth/totp/enroll, /v1/auth/totp/confirm). Every log-in attempt is throttled by account
// name and source address and is an event in `_system`, success or not.
#include <sodium.h>

#include <boost/asio/post.hpp>

#include "projections/credentials.h"
#include "projections/password_policy.h"
#include "projections/totp.h"
#include "server/api_call.h"

namespace trail::server {
namespace json = boost::json;

namespace {

constexpr std::size_t kNameBytesMax = 256;
constexpr std::size_t kPasswordBytesMax = 4096;
constexpr std::size_t kCodeBytesMax = 64;

// The string at `key`, or nullopt when absent or not a string.
std::optional<std::string> string_at(const json::object& object, std::string_view key) {
  auto it = object.find(key);
  if (it == object.end() || !it->value().is_string()) return std::nullopt;
  return std::string(it->value().get_string());
}

void wipe(std::string& secret) { sodium_memzero(secret.data(), secret.size()); }

}  // namespace

// ---- throttling ----

bool Api::check_throttle(const CallPtr& call, std::string_view name, std::string& tag) {
  auto name_tag = views_.identity->name_tag(ledger_, name);
  if (!name_tag.is_ok()) {
    call->fail(name_tag.status());
    return false;
  }
  tag = std::move(*name_tag);
  auto throttles = views_.identity->throttles(ledger_, tag, call->context.remote_address);
  if (!throttles.is_ok()) {
    call->fail(throttles.status());
    return false;
  }
  const TimeUs until =
      std::max(throttles->account.locked_until(), throttles->address.locked_until());
  if (until <= now()) return true;
  metrics_.auth_failures("throttled").inc();
  const auto wait_s = std::to_string((until - now()) / 1'000'000 + 1);
  auto draft = proj::identity::login_failed("", call->device_id(), call->context.remote_address,
                                            "throttled", tag);
  ledger_.append_async(std::string(ledger::kSystemProject), {std::move(draft)},
                       [call, wait_s](Result<std::vector<ledger::Receipt>> r) {
                         if (!r.is_ok()) return call->fail(r.status());
                         Response response = error_response(
                             call->request, http::status::too_many_requests, "throttled",
                             "too many failed log-ins; retry later");
                         response.set(http::field::retry_after, wait_s);
                         call->reply(std::move(response));
                       });
  return false;
}

void Api::fail_login(const CallPtr& call, const std::string& user_id, std::string_view reason,
                     const std::string& tag) {
  metrics_.auth_failures(reason).inc();
  std::vector<ledger::EventDraft> drafts;
  drafts.push_back(proj::identity::login_failed(user_id, call->device_id(),
                                                call->context.remote_address, reason, tag));
  // The failure that reaches the limit engages the lock-out: on record in the same commit.
  auto throttles = views_.identity->throttles(ledger_, tag, call->context.remote_address);
  if (!throttles.is_ok()) return call->fail(throttles.status());
  const TimeUs at = now();
  for (const auto& [what, before] : {std::pair{"account", throttles->account},
                                     std::pair{"address", throttles->address}}) {
    proj::Throttle after{before.failures + 1, at};
    if (after.failures < proj::Throttle::kFreeFailures) continue;
    drafts.push_back(proj::identity::account_locked(std::string_view(what) == "account" ? user_id : "",
                                                    what, after.locked_until(), after.failures,
                                                    call->context.remote_address));
  }
  ledger_.append_async(std::string(ledger::kSystemProject), std::move(drafts),
                       [call](Result<std::vector<ledger::Receipt>> r) {
                         if (!r.is_ok()) return call->fail(r.status());
                         Response response =
                             error_response(call->request, http::status::unauthorized,
                                            "unauthenticated", "invalid credentials");
                         response.set(http::field::www_authenticate, "Bearer, Basic realm=\"trail\"");
                         call->reply(std::move(response));
                       });
}

// ---- log-in ----

void Api::login(const CallPtr& call) {
  auto body = call->body_object();
  if (!body) return;
  auto name = string_at(*body, "username");
  auto password = string_at(*body, "password");
  auto code = string_at(*body, "totp");
  if (!name || !password || (body->contains("totp") && !code)) {
    return call->error(http::status::bad_request, "invalid",
                       "body must be {\"username\": string, \"password\": string, \"totp\": "
                       "string (optional)}");
  }
  if (name->size() > kNameBytesMax || password->size() > kPasswordBytesMax ||
      (code && code->size() > kCodeBytesMax)) {
    return call->error(http::status::bad_request, "invalid", "username, password or totp too long");
  }
  std::string tag;
  if (!check_throttle(call, *name, tag)) return;
  // Argon2id runs on its own pool; unknown users cost the same as known ones.
  boost::asio::post(password_pool_, [this, call, name = std::move(*name),
                                     password = std::move(*password), code = std::move(code),
                                     tag = std::move(tag)]() mutable {
    auto verified = verify_credentials(name, password);
    if (!verified.is_ok()) return call->fail(verified.status());
    if (!verified->user) return fail_login(call, verified->known_id, "password", tag);
    proj::UserRecord& user = *verified->user;
    std::map<std::string, std::string> second_factor;
    std::optional<std::uint64_t> step;
    if (user.two_factor()) {
      if (!code || code->empty()) {
        auto draft = proj::identity::login_failed(user.id, call->device_id(),
                                                  call->context.remote_address, "totp_required",
                                                  tag);
        return ledger_.append_async(
            std::string(ledger::kSystemProject), {std::move(draft)},
            [call](Result<std::vector<ledger::Receipt>> r) {
              if (!r.is_ok()) return call->fail(r.status());
              call->error(http::status::unauthorized, "totp_required",
                          "this account needs its two-factor code in \"totp\"");
            });
      }
      if (proj::totp::looks_like_recovery_code(*code)) {
        std::string digest = proj::totp::recovery_code_digest(*code);
        if (!user.recovery_digests.contains(digest)) {
          return fail_login(call, user.id, "recovery_code", tag);
        }
        second_factor["recovery"] = std::move(digest);
      } else {
        const auto secret = proj::totp::base32_decode(user.totp_secret);
        if (secret) step = proj::totp::verify(*secret, *code, now(), user.totp_last_step);
        bool fresh = false;
        if (step) {
          std::lock_guard lock{totp_mutex_};
          fresh = totp_in_flight_.emplace(user.id, *step).second;
        }
        if (!fresh) return fail_login(call, user.id, "totp", tag);
        second_factor["totp_step"] = std::to_string(*step);
      }
    }
    const std::string token = proj::new_token();
    const TimeUs expires = now() + static_cast<TimeUs>(options_.token_lifetime.count()) * 1'000'000;
    call->caller = Caller{std::move(user), proj::token_digest(token)};
    auto draft = proj::identity::login_succeeded(call->user_id(), call->device_id(),
                                                  proj::token_digest(token), expires, "password",
                                                  call->context.remote_address,
                                                  std::move(second_factor));
    // The token works once its session is durable; only then does the client get it.
    ledger_.append_async(
        std::string(ledger::kSystemProject), {std::move(draft)},
        [this, call, token, expires, step](Result<std::vector<ledger::Receipt>> r) {
          if (step) {
            std::lock_guard lock{totp_mutex_};
            totp_in_flight_.erase({call->user_id(), *step});
          }
          if (!r.is_ok()) return call->fail(r.status());
          call->json(http::status::ok, json::object{{"token", token},
                                                    {"expires_at", format_rfc3339(expires)},
                                                    {"user_id", call->user_id()}});
        });
  });
}

void Api::logout(const CallPtr& call) {
  if (!call->caller->token) {
    return call->error(http::status::bad_request, "invalid",
                       "log-out ends a bearer session; HTTP Basic has none");
  }
  auto draft = proj::identity::session_ended(call->user_id(), call->device_id(),
                                             *call->caller->token);
  ledger_.append_async(std::string(ledger::kSystemProject), {std::move(draft)},
                       [call](Result<std::vector<ledger::Receipt>> r) {
                         if (!r.is_ok()) return call->fail(r.status());
                         call->json(http::status::ok, json::object{{"logged_out", true}});
                       });
}

// ---- password ----

void Api::password_change(const CallPtr& call) {
  auto body = call->body_object();
  if (!body) return;
  auto old_password = string_at(*body, "old");
  auto new_password = string_at(*body, "new");
  if (!old_password || !new_password || body->size() != 2) {
    return call->error(http::status::bad_request, "invalid",
                       "body must be {\"old\": string, \"new\": string}");
  }
  if (old_password->size() > kPasswordBytesMax || new_password->size() > kPasswordBytesMax) {
    return call->error(http::status::bad_request, "invalid", "password too long");
  }
  std::string tag;
  if (!check_throttle(call, call->caller->user.name, tag)) return;
  boost::asio::post(password_pool_, [this, call, old_password = std::move(*old_password),
                                     new_password = std::move(*new_password),
                                     tag = std::move(tag)]() mutable {
    const proj::UserRecord& user = call->caller->user;
    const bool right = proj::verify_password(user.password_hash, old_password);
    wipe(old_password);
    if (!right) {
      wipe(new_password);
      return fail_login(call, user.id, "password_change", tag);
    }
    Status strong = proj::check_new_password(new_password, user.name);
    if (strong.is_ok() && proj::password_reused(new_password, user.recent_password_hashes)) {
      strong = Status::error(Code::kInvalid, "the new password was used recently; choose another");
    }
    if (!strong.is_ok()) {
      wipe(new_password);
      return call->error(http::status::bad_request, "weak_password", strong.detail());
    }
    auto hash = proj::hash_password(new_password);
    wipe(new_password);
    if (!hash.is_ok()) return call->fail(hash.status());
    append_then_answer(call, std::string(ledger::kSystemProject),
                       {proj::identity::password_changed(user.id, schema::Channel::API, user.id,
                                                         *hash)},
                       http::status::ok, json::object{{"changed", true}, {"sessions_ended", true}});
  });
}

// ---- two-factor enrolment ----

void Api::totp_enroll(const CallPtr& call) {
  if (!call->request.body().empty()) {
    auto body = call->body_object();
    if (!body) return;
    if (!body->empty()) return call->error(http::status::bad_request, "invalid", "body must be {}");
  }
  const std::string secret = proj::totp::new_secret();
  const std::string encoded = proj::totp::base32_encode(secret);
  const std::string uri = proj::totp::otpauth_uri("Trail", call->caller->user.name, secret);
  append_then_answer(call, std::string(ledger::kSystemProject),
                     {proj::identity::totp_enrolled(call->user_id(), encoded)}, http::status::ok,
                     json::object{{"otpauth_uri", uri}});
}

void Api::totp_confirm(const CallPtr& call) {
  auto body = call->body_object();
  if (!body) return;
  auto code = string_at(*body, "code");
  if (!code || body->size() != 1 || code->size() > kCodeBytesMax) {
    return call->error(http::status::bad_request, "invalid", "body must be {\"code\": string}");
  }
  const proj::UserRecord& user = call->caller->user;
  if (user.totp_pending.empty()) {
    return call->error(http::status::conflict, "no_enrolment",
                       "no two-factor enrolment is pending: POST /v1/auth/totp/enroll first");
  }
  const auto secret = proj::totp::base32_decode(user.totp_pending);
  const auto step = secret ? proj::totp::verify(*secret, *code, now(), user.totp_last_step)
                           : std::nullopt;
  if (!step) {
    return call->error(http::status::bad_request, "invalid_code",
                       "the code does not match; check the device's clock and try the next one");
  }
  auto codes = proj::totp::new_recovery_codes();
  std::vector<std::string> digests;
  json::array shown;
  for (const auto& c : codes) {
    digests.push_back(proj::totp::recovery_code_digest(c));
    shown.emplace_back(c);
  }
  append_then_answer(call, std::string(ledger::kSystemProject),
                     {proj::identity::totp_confirmed(user.id, digests, *step)}, http::status::ok,
                     json::object{{"recovery_codes", std::move(shown)}});
}

}  // namespace trail::server
