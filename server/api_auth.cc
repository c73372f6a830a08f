// POST /v1/auth/login and /v1/auth/logout.
#include <boost/asio/post.hpp>

#include "projections/credentials.h"
#include "server/api_call.h"

namespace trail::server {
namespace json = boost::json;

namespace {

// The string at `key`, or nullopt when absent or not a string.
std::optional<std::string> string_at(const json::object& object, std::string_view key) {
  auto it = object.find(key);
  if (it == object.end() || !it->value().is_string()) return std::nullopt;
  return std::string(it->value().get_string());
}

}  // namespace

void Api::login(const CallPtr& call) {
  auto body = call->body_object();
  if (!body) return;
  auto name = string_at(*body, "username");
  auto password = string_at(*body, "password");
  if (!name || !password) {
    return call->error(http::status::bad_request, "invalid",
                       "body must be {\"username\": string, \"password\": string}");
  }
  if (name->size() > 256 || password->size() > 4096) {
    return call->error(http::status::bad_request, "invalid", "username or password too long");
  }
  // Argon2id runs on its own pool; unknown users cost the same as known ones.
  boost::asio::post(password_pool_, [this, call, name = std::move(*name),
                                     password = std::move(*password)]() mutable {
    auto verified = verify_credentials(name, password);
    if (!verified.is_ok()) return call->fail(verified.status());
    if (!verified->user) return fail_authentication(call, verified->known_id, "password");
    const std::string token = proj::new_token();
    const TimeUs expires = now() + static_cast<TimeUs>(options_.token_lifetime.count()) * 1'000'000;
    call->caller = Caller{std::move(*verified->user), proj::token_digest(token)};
    auto draft = proj::identity::login_succeeded(call->user_id(), call->device_id(),
                                                  proj::token_digest(token), expires, "password",
                                                  call->context.remote_address);
    // The token works once its session is durable; only then does the client get it.
    ledger_.append_async(std::string(ledger::kSystemProject), {std::move(draft)},
                         [call, token, expires](Result<std::vector<ledger::Receipt>> r) {
                           if (!r.is_ok()) return call->fail(r.status());
                           call->json(http::status::ok,
                                      json::object{{"token", token},
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

}  // namespace trail::server
