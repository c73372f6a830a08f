#include "server/api.h"

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include "ledger/bytes.h"
#include "projections/credentials.h"
#include "server/api_call.h"
#include "server/request_parts.h"

namespace trail::server {
namespace json = boost::json;

namespace {

using Method = void (Api::*)(const Api::CallPtr&);

struct RouteSpec {
  std::string_view pattern;  // Segments; {p} is the project, {id} the record.
  http::verb verb;
  bool authenticated;
  Method method;
};

std::vector<std::string_view> split(std::string_view pattern) {
  std::vector<std::string_view> out;
  while (!pattern.empty()) {
    if (pattern.front() == '/') pattern.remove_prefix(1);
    const auto slash = pattern.find('/');
    out.push_back(pattern.substr(0, slash));
    pattern = slash == std::string_view::npos ? std::string_view{} : pattern.substr(slash);
  }
  return out;
}

// Whether `segments` fit `pattern`; fills the captures.
bool fits(std::string_view pattern, const std::vector<std::string>& segments, std::string& project,
          std::string& id) {
  const auto parts = split(pattern);
  if (parts.size() != segments.size()) return false;
  std::string p;
  std::string i;
  for (std::size_t k = 0; k < parts.size(); ++k) {
    if (parts[k] == "{p}") {
      p = segments[k];
    } else if (parts[k] == "{id}") {
      i = segments[k];
    } else if (parts[k] != segments[k]) {
      return false;
    }
  }
  project = std::move(p);
  id = std::move(i);
  return true;
}

}  // namespace

// ---- Call ----

void Api::Call::reply(Response response) {
  if (answered) return;
  answered = true;
  response.set("X-Trail-Route", route.empty() ? "unmatched" : route);
  if (caller) response.set("X-Trail-User", caller->user.id);
  if (in_flight != nullptr) in_flight->fetch_sub(1);
  respond(std::move(response));
}

void Api::Call::json(http::status status, const json::value& body) {
  reply(json_response(request, status, json::serialize(body)));
}

void Api::Call::json_text(http::status status, std::string body) {
  reply(json_response(request, status, std::move(body)));
}

void Api::Call::error(http::status status, std::string_view code, std::string_view message) {
  reply(error_response(request, status, code, message));
}

void Api::Call::fail(const Status& status) {
  switch (status.code()) {
    case Code::kInvalid: return error(http::status::bad_request, "invalid", status.detail());
    case Code::kNotFound: return error(http::status::not_found, "not_found", status.detail());
    case Code::kConflict: return error(http::status::conflict, "conflict", status.detail());
    case Code::kBusy:
      return error(http::status::service_unavailable, "busy", "the server is busy; retry later");
    default:
      spdlog::error("request {} failed: {}", context.request_id, status.to_string());
      return error(http::status::internal_server_error, "internal",
                   "the server could not complete the request; request id " + context.request_id);
  }
}

std::optional<json::object> Api::Call::body_object() {
  boost::system::error_code ec;
  // One arena for the whole document, freed with it: a batch of events is hundreds of strings
  // and objects, each otherwise its own malloc and free.
  json::storage_ptr arena =
      json::make_shared_resource<json::monotonic_resource>(request.body().size() * 2 + 1024);
  json::value doc = json::parse(request.body(), ec, std::move(arena));
  if (ec) {
    error(http::status::bad_request, "invalid", "body is not JSON: " + ec.message());
    return std::nullopt;
  }
  if (!doc.is_object()) {
    error(http::status::bad_request, "invalid", "body must be a JSON object");
    return std::nullopt;
  }
  return std::move(doc.get_object());
}

std::string Api::Call::device_id() const {
  auto it = request.find("X-Device-Id");
  if (it == request.end()) return {};
  std::string value(it->value());
  if (value.size() > ledger::kDeviceIdBytesMax) value.resize(ledger::kDeviceIdBytesMax);
  return value;
}

// ---- Api ----

Api::Api(ledger::Ledger& ledger, Views views, const ServerMetrics& metrics, ApiOptions options)
    : ledger_{ledger},
      views_{std::move(views)},
      metrics_{metrics},
      options_{std::move(options)},
      password_pool_{std::max(1U, options_.password_threads)} {
  if (!options_.clock) options_.clock = [] { return now_us(); };
  randombytes_buf(cache_key_.data(), cache_key_.size());
}

Api::~Api() { password_pool_.join(); }

std::size_t Api::in_flight() const { return in_flight_.load(); }

void Api::quiesce() { password_pool_.join(); }

void Api::handle(Request request, const RequestContext& context, Responder respond) {
  auto call = std::make_shared<Call>();
  call->request = std::move(request);
  call->context = context;
  call->respond = std::move(respond);
  call->in_flight = &in_flight_;
  in_flight_.fetch_add(1);
  dispatch(call);
}

void Api::dispatch(const CallPtr& call) {
  const auto target = call->request.target();
  const std::string_view target_view{target.data(), target.size()};
  auto segments = path_segments(target_view);
  if (!segments.is_ok()) return call->fail(segments.status());
  call->segments = std::move(*segments);
  auto query = parse_query(target_view);
  if (!query.is_ok()) return call->fail(query.status());
  call->query = std::move(*query);

  if (call->segments.size() == 1 && call->segments[0] == "healthz") {
    call->route = "/healthz";
    if (call->request.method() != http::verb::get && call->request.method() != http::verb::head) {
      return call->error(http::status::method_not_allowed, "method_not_allowed",
                         "use GET on /healthz");
    }
    return call->json(http::status::ok, json::object{{"status", "ok"}});
  }

  static const std::vector<RouteSpec> table = {
      {"/metrics", http::verb::get, true, &Api::metrics_get},
      {"/v1/auth/login", http::verb::post, false, &Api::login},
      {"/v1/auth/logout", http::verb::post, true, &Api::logout},
      {"/v1/projects", http::verb::get, true, &Api::projects_list},
      {"/v1/projects", http::verb::post, true, &Api::projects_create},
      {"/v1/projects/{p}/events", http::verb::post, true, &Api::events_append},
      {"/v1/projects/{p}/submission", http::verb::head, true, &Api::submission_head},
      {"/v1/projects/{p}/submission", http::verb::post, true, &Api::submission_post},
      {"/v1/projects/{p}/cases", http::verb::get, true, &Api::cases_list},
      {"/v1/projects/{p}/cases/{id}", http::verb::get, true, &Api::case_get},
      {"/v1/projects/{p}/cases/{id}/history", http::verb::get, true, &Api::case_history},
      {"/v1/projects/{p}/reports/{id}", http::verb::get, true, &Api::report_get},
      {"/v1/projects/{p}/audit/changes", http::verb::get, true, &Api::audit_changes},
      {"/v1/projects/{p}/audit/access", http::verb::get, true, &Api::audit_access},
      {"/v1/projects/{p}/ledger/head", http::verb::get, true, &Api::ledger_head},
      {"/v1/projects/{p}/ledger/events", http::verb::get, true, &Api::ledger_events},
      {"/v1/projects/{p}/ledger/checkpoint", http::verb::get, true, &Api::ledger_checkpoint},
      {"/v1/projects/{p}/ledger/checkpoints", http::verb::get, true, &Api::ledger_checkpoints},
      {"/v1/projects/{p}/ledger/proof/inclusion", http::verb::get, true,
       &Api::ledger_inclusion_proof},
      {"/v1/projects/{p}/ledger/proof/consistency", http::verb::get, true,
       &Api::ledger_consistency_proof},
      {"/v1/ledger/public-key", http::verb::get, false, &Api::ledger_public_key},
      {"/v1/projects/{p}/sync", http::verb::get, true, &Api::sync},
      {"/v1/auth/password", http::verb::post, true, &Api::password_change},
      {"/v1/auth/totp/enroll", http::verb::post, true, &Api::totp_enroll},
      {"/v1/auth/totp/confirm", http::verb::post, true, &Api::totp_confirm},
      {"/v1/projects/{p}/org-units", http::verb::post, true, &Api::org_unit_add},
      {"/v1/projects/{p}/users/{id}/scopes", http::verb::put, true, &Api::user_scopes_put},
      {"/v1/projects/{p}/users/{id}/roles", http::verb::put, true, &Api::user_roles_put},
      {"/v1/projects/{p}/roles/{id}", http::verb::put, true, &Api::role_put},
      {"/v1/projects/{p}/case-types/{id}", http::verb::put, true, &Api::case_type_put},
      {"/v1/projects/{p}/policy", http::verb::get, true, &Api::policy_get},
      {"/v1/projects/{p}/policy", http::verb::put, true, &Api::policy_put},
      {"/v1/projects/{p}/cases/{id}/break-glass", http::verb::post, true, &Api::break_glass},
      {"/v1/audit/security", http::verb::get, true, &Api::security_audit},
      {"/v1/projects/{p}/audit/security", http::verb::get, true, &Api::security_audit},
    };
  const RouteSpec* matched = nullptr;
  std::string allowed;
  for (const auto& spec : table) {
    std::string project;
    std::string id;
    if (!fits(spec.pattern, call->segments, project, id)) continue;
    call->route = std::string(spec.pattern);
    if (spec.verb != call->request.method()) {
      if (!allowed.empty()) allowed += ", ";
      allowed += std::string(http::to_string(spec.verb));
      continue;
    }
    call->project = std::move(project);
    call->id = std::move(id);
    matched = &spec;
    break;
  }
  if (matched == nullptr) {
    if (allowed.empty()) {
      call->route.clear();
      return call->error(http::status::not_found, "not_found", "no such resource");
    }
    Response response = error_response(call->request, http::status::method_not_allowed,
                                       "method_not_allowed", "allowed: " + allowed);
    response.set(http::field::allow, allowed);
    return call->reply(std::move(response));
  }
  const Method method = matched->method;
  if (!matched->authenticated) return (this->*method)(call);
  authenticate(call, [this, call, method] { (this->*method)(call); });
}

// ---- authentication ----

namespace {

// "Bearer <token>" or "Basic <base64(name:password)>" from the Authorization header.
struct Credentials {
  std::string scheme;  // "bearer" or "basic"
  std::string token;
  std::string name;
  std::string password;
};

std::optional<Credentials> read_credentials(const Request& request) {
  auto it = request.find(http::field::authorization);
  if (it == request.end()) return std::nullopt;
  const std::string_view value{it->value().data(), it->value().size()};
  const auto space = value.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  std::string scheme(value.substr(0, space));
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view rest = value.substr(space + 1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  Credentials out;
  out.scheme = scheme;
  if (scheme == "bearer") {
    if (rest.empty() || rest.size() > 256) return std::nullopt;
    out.token = std::string(rest);
    return out;
  }
  if (scheme == "basic") {
    if (rest.size() > 1024) return std::nullopt;
    std::string decoded(rest.size(), '\0');
    std::size_t length = 0;
    if (sodium_base642bin(reinterpret_cast<unsigned char*>(decoded.data()), decoded.size(),
                          rest.data(), rest.size(), nullptr, &length, nullptr,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
      return std::nullopt;
    }
    decoded.resize(length);
    const auto colon = decoded.find(':');
    if (colon == std::string::npos) return std::nullopt;
    out.name = decoded.substr(0, colon);
    out.password = decoded.substr(colon + 1);
    sodium_memzero(decoded.data(), decoded.size());
    return out;
  }
  return std::nullopt;
}

}  // namespace

void Api::authenticate(const CallPtr& call, std::function<void()> next) {
  auto credentials = read_credentials(call->request);
  if (!credentials) {
    metrics_.auth_failures("missing").inc();
    Response response = error_response(call->request, http::status::unauthorized,
                                       "unauthenticated", "authentication required");
    response.set(http::field::www_authenticate, "Bearer, Basic realm=\"trail\"");
    return call->reply(std::move(response));
  }
  if (credentials->scheme == "bearer") {
    const Digest digest = proj::token_digest(credentials->token);
    auto session = views_.identity->session(ledger_, digest, now());
    if (!session.is_ok()) return call->fail(session.status());
    if (!*session) return fail_authentication(call, "", "token");
    const TimeUs at = now();
    TimeUs idle_since = (*session)->issued_us;
    {
      std::lock_guard lock{seen_mutex_};
      auto [it, fresh] = last_seen_.try_emplace(std::string(as_chars(digest)), idle_since);
      if (!fresh) idle_since = it->second;
      const TimeUs idle_max = std::chrono::duration_cast<std::chrono::microseconds>(
                                  options_.idle_timeout).count();
      if (at - idle_since > idle_max) {
        last_seen_.erase(it);
        return end_session(call, (*session)->user_id, digest, "idle");
      }
      it->second = at;
    }
    call->caller = Caller{std::move((*session)->user), digest, (*session)->two_factor,
                          (*session)->issued_us, idle_since};
    return next();
  }
  if (!call->context.tls && !call->context.loopback) {
    return fail_authentication(call, "", "basic_without_tls");
  }
  authenticate_basic(call, std::move(credentials->name), std::move(credentials->password),
                     std::move(next));
}

void Api::authenticate_basic(const CallPtr& call, std::string name, std::string password,
                             std::function<void()> next) {
  // The cache key: a keyed hash of the credential, never the credential itself.
  std::array<std::uint8_t, 32> mac{};
  {
    crypto_generichash_state state;
    crypto_generichash_init(&state, cache_key_.data(), cache_key_.size(), mac.size());
    const std::uint64_t name_size = name.size();
    crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(&name_size), 8);
    crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(name.data()), name.size());
    crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(password.data()),
                              password.size());
    crypto_generichash_final(&state, mac.data(), mac.size());
  }
  const std::string cache_key(reinterpret_cast<const char*>(mac.data()), mac.size());
  std::optional<BasicCacheEntry> cached;
  {
    std::lock_guard lock{cache_mutex_};
    if (auto it = basic_cache_.find(cache_key); it != basic_cache_.end()) {
      if (it->second.expires_us > now()) {
        cached = it->second;
      } else {
        basic_cache_.erase(it);
      }
    }
  }
  if (cached) {
    auto user = views_.identity->user_by_id(ledger_, cached->user_id);
    if (!user.is_ok()) return call->fail(user.status());
    // A disabled user or a changed password voids the cached verification.
    if (*user && !(*user)->disabled && (*user)->password_seq == cached->password_seq) {
      call->caller = Caller{std::move(**user), std::nullopt};
      return next();
    }
    std::lock_guard lock{cache_mutex_};
    basic_cache_.erase(cache_key);
  }
  std::string tag;
  if (!check_throttle(call, name, tag)) return;
  boost::asio::post(password_pool_, [this, call, name = std::move(name),
                                     password = std::move(password), cache_key,
                                     tag = std::move(tag), next = std::move(next)]() mutable {
    auto verified = verify_credentials(name, password);
    if (!verified.is_ok()) return call->fail(verified.status());
    if (!verified->user) return fail_login(call, verified->known_id, "basic", tag);
    // HTTP Basic carries no second factor: an account with one uses a bearer token.
    if (verified->user->two_factor()) return fail_login(call, verified->known_id, "basic_2fa", tag);
    const proj::UserRecord& user = *verified->user;
    {
      std::lock_guard lock{cache_mutex_};
      if (basic_cache_.size() > 100'000) basic_cache_.clear();  // Bounded; refills on demand.
      basic_cache_[cache_key] = BasicCacheEntry{
          user.id, user.password_seq,
          now() + static_cast<TimeUs>(options_.basic_cache_ttl.count()) * 1'000'000};
    }
    call->caller = Caller{std::move(*verified->user), std::nullopt};
    auto draft = proj::identity::login_succeeded(call->caller->user.id, call->device_id(),
                                                  std::nullopt, 0, "basic",
                                                  call->context.remote_address);
    ledger_.append_async(std::string(ledger::kSystemProject), {std::move(draft)},
                         [this, call, next = std::move(next)](Result<std::vector<ledger::Receipt>> r) {
                           if (!r.is_ok()) return call->fail(r.status());
                           // Not on the ledger's completion thread: the route may append, and
                           // an append may wait on that thread (a project's first data key).
                           boost::asio::post(password_pool_, next);
                         });
  });
}

Result<Api::Verified> Api::verify_credentials(std::string_view name, std::string& password) const {
  auto user = views_.identity->user_by_name(ledger_, name);
  if (!user.is_ok()) {
    sodium_memzero(password.data(), password.size());
    return user.status();
  }
  const bool known = user->has_value() && !(**user).disabled;
  const bool ok =
      proj::verify_password(known ? (**user).password_hash : proj::dummy_hash(), password) && known;
  sodium_memzero(password.data(), password.size());
  Verified out;
  if (user->has_value()) out.known_id = (**user).id;
  if (ok) out.user = std::move(**user);
  return out;
}

void Api::fail_authentication(const CallPtr& call, const std::string& user_id,
                              std::string_view reason) {
  metrics_.auth_failures(reason).inc();
  auto draft = proj::identity::login_failed(user_id, call->device_id(),
                                            call->context.remote_address, reason);
  // The same answer whatever was wrong; sent once the failure is on record.
  ledger_.append_async(std::string(ledger::kSystemProject), {std::move(draft)},
                       [call](Result<std::vector<ledger::Receipt>> r) {
                         if (!r.is_ok()) return call->fail(r.status());
                         Response response =
                             error_response(call->request, http::status::unauthorized,
                                            "unauthenticated", "invalid credentials");
                         response.set(http::field::www_authenticate, "Bearer, Basic realm=\"trail\"");
                         call->reply(std::move(response));
                       });
}

// ---- authorisation ----

bool Api::authorize(const CallPtr& call, std::uint32_t authority) {
  const auto& caller = *call->caller;
  auto project = views_.identity->project(ledger_, call->project);
  if (!project.is_ok()) {
    call->fail(project.status());
    return false;
  }
  if (!*project || !caller.user.member_of(call->project, &**project)) {
    call->error(http::status::not_found, "not_found", "no such project");
    return false;
  }
  const proj::ProjectPolicy& policy = (*project)->policy;
  if (caller.token) {
    // The project's own session limits, tighter than the server's.
    const TimeUs at = now();
    const TimeUs idle_max = policy.idle_timeout_minutes * 60'000'000;
    const TimeUs life_max = policy.session_max_hours * 3600'000'000;
    if (at - caller.idle_since_us > idle_max || at - caller.issued_us > life_max) {
      // The session ends (on record), so a retry cannot count as fresh activity.
      {
        std::lock_guard lock{seen_mutex_};
        last_seen_.erase(std::string(as_chars(*caller.token)));
      }
      end_session(call, caller.user.id, *caller.token,
                  at - caller.issued_us > life_max ? "lifetime" : "idle");
      return false;
    }
  }
  if (policy.require_2fa && !caller.two_factor) {
    call->error(http::status::forbidden, "totp_required",
                caller.user.two_factor()
                    ? "this project requires two-factor log-in: log in with your code"
                    : "this project requires two-factor log-in: enrol at "
                      "POST /v1/auth/totp/enroll, then log in with your code");
    return false;
  }
  call->project_record = std::move(**project);
  call->gate.emplace(caller.user, call->project, *call->project_record,
                     [this, project_id = call->project](std::string_view owner) {
                       return owner_units(project_id, owner);
                     });
  if ((call->gate->authorities() & authority) != authority) {
    call->error(http::status::forbidden, "forbidden", "your roles in this project do not allow this");
    return false;
  }
  return true;
}

std::vector<std::string> Api::owner_units(const std::string& project, std::string_view owner) {
  auto user = views_.identity->user_by_id(ledger_, owner);
  if (!user.is_ok() || !*user) return {};  // Not a user: the case sits nowhere in the tree.
  const proj::Scopes scopes = (*user)->scopes_in(project);
  if (scopes.capture.all) return {};
  return {scopes.capture.units.begin(), scopes.capture.units.end()};
}

void Api::append_then_answer(const CallPtr& call, std::string project,
                             std::vector<ledger::EventDraft> drafts, http::status status,
                             json::value body) {
  for (auto& d : drafts) d.device_id = call->device_id();
  ledger_.append_async(std::move(project), std::move(drafts),
                       [call, status, body = std::move(body)](
                           Result<std::vector<ledger::Receipt>> r) {
                         if (!r.is_ok()) return call->fail(r.status());
                         call->json(status, body);
                       });
}

void Api::end_session(const CallPtr& call, const std::string& user_id, const Digest& token,
                      std::string_view reason) {
  auto draft = proj::identity::session_ended(user_id, call->device_id(), token, reason);
  ledger_.append_async(std::string(ledger::kSystemProject), {std::move(draft)},
                       [call](Result<std::vector<ledger::Receipt>> r) {
                         if (!r.is_ok()) return call->fail(r.status());
                         call->error(http::status::unauthorized, "session_expired",
                                     "the session has passed its limit; log in again");
                       });
}

void Api::answer_after_read(const CallPtr& call, proj::RecordReadData read, Response response) {
  read.address = call->context.remote_address;
  read.endpoint = std::string(http::to_string(call->request.method())) + " " + call->route;
  auto draft = proj::make_record_read(call->user_id(), call->device_id(), schema::Channel::API,
                                      std::move(read), now(), time_ordered_id());
  ledger_.append_async(call->project, {std::move(draft)},
                       [call, response = std::move(response)](
                           Result<std::vector<ledger::Receipt>> r) mutable {
                         // No audit record, no data.
                         if (!r.is_ok()) return call->fail(r.status());
                         call->reply(std::move(response));
                       });
}

void Api::metrics_get(const CallPtr& call) {
  if (!call->caller->user.is_system_admin()) {
    return call->error(http::status::forbidden, "forbidden", "metrics are for system administrators");
  }
  Response response{http::status::ok, call->request.version()};
  response.set(http::field::content_type, kMetricsContentType);
  response.set(http::field::cache_control, "no-store");
  response.keep_alive(call->request.keep_alive());
  response.body() = metrics_.registry().render();
  response.prepare_payload();
  call->reply(std::move(response));
}

}  // namespace trail::server
