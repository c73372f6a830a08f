// The v1 API: every route of traild behind one Handler. It authenticates each request
// (bearer token, or HTTP Basic for OpenRosa clients), checks the caller's authorities and
// project membership, reads the views or appends through the ledger, and answers. Reads of
// personal data append a record.read event first and answer only once it is durable.
//
// Routes (JSON unless said otherwise; errors {"error": {"code", "message"}}):
//   GET  /healthz                                  no authentication
//   GET  /metrics                                  Prometheus text; system_admin
//   POST /v1/auth/login, POST /v1/auth/logout
//   GET|POST /v1/projects
//   POST /v1/projects/{p}/events
//   HEAD|POST /v1/projects/{p}/submission          OpenRosa form submission
//   GET  /v1/projects/{p}/cases, .../cases/{id}, .../cases/{id}/history
//   GET  /v1/projects/{p}/reports/{name}           JSON, or CSV for Accept: text/csv
//   GET  /v1/projects/{p}/audit/changes, .../audit/access
//   GET  /v1/projects/{p}/ledger/head, .../ledger/events
//   GET  /v1/projects/{p}/ledger/checkpoint[?fresh=true]   text/plain: the latest signed
//        checkpoint, the note exactly as signed (fresh: issue one at the head first)
//   GET  /v1/projects/{p}/ledger/checkpoints[?size=N]      JSON: the sizes checkpointed;
//        with size, text/plain: the checkpoint at size N
//   GET  /v1/projects/{p}/ledger/proof/inclusion?seq=S[&size=N],
//        .../ledger/proof/consistency?from=M[&to=N]        RFC 9162 proofs, hashes in
//        base64; N defaults to the tree size
//   GET  /v1/ledger/public-key     text/plain: the checkpoint verifier key; no authentication
//        (it is public)
//   GET  /v1/projects/{p}/sync
//   POST /v1/auth/password, /v1/auth/totp/enroll, /v1/auth/totp/confirm
//   POST /v1/projects/{p}/org-units; PUT .../users/{name}/scopes, .../users/{name}/roles,
//   PUT  .../roles/{name}, .../case-types/{type}; GET|PUT .../policy
//   POST /v1/projects/{p}/cases/{id}/break-glass
//   GET  /v1/audit/security (system admin), /v1/projects/{p}/audit/security
// The ledger routes (head, events, checkpoints, proofs) need the verify_ledger authority (the
// auditor role): envelopes, hashes and signed notes, never plaintext.
// Authorisation: a project the caller is not a member of, or that does not exist, is 404
// whatever the route; a missing authority in a project the caller belongs to is 403. Cases are
// gated by the caller's scopes and the case type's level (projections/case_gate.h): a case the
// caller may not know of is 404, a protected one the caller may search but not read without
// breaking the glass is 403 break_glass_required. A project that requires two-factor log-in
// answers 403 totp_required to sessions without it; its idle and absolute session limits
// answer 401 session_expired.
// Log-in throttling: after Throttle::kFreeFailures failures an account name (known or not)
// and a source address each wait, doubling; waiting callers get 429 throttled whoever they
// name, without a password check, so status, body and time tell nothing of which names exist.
//
// Thread safety: handle() runs on any I/O thread; Argon2id checks run on a small pool of their
// own so they never hold up I/O; append callbacks run on the ledger's completion thread.
// GET .../ledger/checkpoint?fresh=true waits on its I/O thread for the checkpoint's commit.
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <boost/json/value.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <utility>
#include <vector>
#include <string>
#include <unordered_map>

#include "ledger/clock.h"
#include "ledger/ledger.h"
#include "projections/access_projector.h"
#include "projections/case_projector.h"
#include "projections/identity.h"
#include "projections/report_projector.h"
#include "projections/sync_projector.h"
#include "server/capture_check.h"
#include "server/handler.h"
#include "server/metrics.h"

namespace trail::server {

// The views the API reads; each is registered with the ledger.
struct Views {
  std::shared_ptr<proj::CaseProjector> cases;
  std::shared_ptr<proj::ReportProjector> reports;
  std::shared_ptr<proj::AccessProjector> access;
  std::shared_ptr<proj::SyncProjector> sync;
  std::shared_ptr<proj::IdentityProjector> identity;
};

struct ApiOptions {
  std::chrono::seconds token_lifetime{12 * 3600};
  std::chrono::seconds basic_cache_ttl{300};  // A verified Basic credential skips Argon2id.
  std::size_t page_max = 1000;                // Largest page any list answers.
  std::size_t body_bytes_max = 16U << 20U;    // Announced to OpenRosa clients.
  unsigned password_threads = 2;              // Argon2id runs on its own pool.
  std::chrono::minutes idle_timeout{30};      // Sessions idle longer end (and per project).
  std::function<TimeUs()> clock;              // Server time; default the system clock.
};

class Api final : public Handler {
 public:
  Api(ledger::Ledger& ledger, Views views, const ServerMetrics& metrics, ApiOptions options);
  ~Api() override;
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;

  void handle(Request request, const RequestContext& context, Responder respond) override;

  // Requests accepted and not yet answered (graceful shutdown waits for zero).
  std::size_t in_flight() const;
  // Waits for the password checks in progress (they may still append). Call after the
  // listener has stopped and before the ledger closes; the ledger's closing commit then
  // answers what is left while the Api is still alive.
  void quiesce();

  struct Call;  // One request in flight (api_call.h).
  using CallPtr = std::shared_ptr<Call>;

 private:
  struct BasicCacheEntry {
    std::string user_id;
    std::uint64_t password_seq = 0;
    TimeUs expires_us = 0;
  };

  void dispatch(const CallPtr& call);
  // Authenticates `call` (bearer or Basic), then runs `next`; answers 401 itself on failure.
  void authenticate(const CallPtr& call, std::function<void()> next);
  void authenticate_basic(const CallPtr& call, std::string name, std::string password,
                          std::function<void()> next);
  void fail_authentication(const CallPtr& call, const std::string& user_id, std::string_view reason);
  // Ends a session that passed its idle or absolute limit, on record, and answers 401
  // session_expired.
  void end_session(const CallPtr& call, const std::string& user_id, const Digest& token,
                   std::string_view reason);
  // Checks a name and password (Argon2id; an unknown or disabled user is checked against a
  // dummy hash, so it costs the same) and wipes the password. Runs on the password pool.
  struct Verified {
    std::optional<proj::UserRecord> user;  // Set when the password is right.
    std::string known_id;                  // The id of the named user, if there is one.
  };
  Result<Verified> verify_credentials(std::string_view name, std::string& password) const;
  // Checks project membership (404) and `authority` (403); answers itself and returns false
  // when the caller may not go on.
  // On success, fills call->project_record and call->gate.
  bool authorize(const CallPtr& call, std::uint32_t authority);
  // The capture units of a case owner who is a user of the call's project.
  std::vector<std::string> owner_units(const std::string& project, std::string_view owner);
  // Checks the case events of an append against the caller's capture scope (CaptureCheck);
  // answers (403, or 404 for a case the caller may not know of) and returns false when one is
  // outside it. Otherwise `guard` gets the same check for the commit (empty when there is
  // nothing to check); answer_append() gives its refusal.
  bool check_capture(const CallPtr& call, const std::vector<ledger::EventDraft>& drafts,
                     std::shared_ptr<CaptureCheck>& check, ledger::AppendGuard& guard);
  // Answers the latest checkpoint of the call's project (text/plain), or 404.
  void answer_latest_checkpoint(const CallPtr& call);
  // Answers an append that failed: the guard's refusal when it refused, else `failure`.
  static void answer_failed_append(const CallPtr& call, const std::shared_ptr<CaptureCheck>& check,
                                   const Status& failure);
  // Throttling of log-ins: answers 429 and returns false while the name or address waits.
  // `tag` receives the name's keyed MAC for the failure record.
  bool check_throttle(const CallPtr& call, std::string_view name, std::string& tag);
  // Records a failed log-in (and a lock-out when it crosses the limit), then answers 401.
  void fail_login(const CallPtr& call, const std::string& user_id, std::string_view reason,
                  const std::string& tag);
  // The case {id} of the call's project when it exists and the caller may see it; otherwise
  // answers (404, the same for both) and returns nullopt.
  // Fills `read` with the audit flags the case's level asks for (flagged read, the grant).
  std::optional<proj::CaseState> visible_case(const CallPtr& call, proj::RecordReadData& read);
  // Appends a record.read for `read` and answers `response` once it is durable.
  void answer_after_read(const CallPtr& call, proj::RecordReadData read, Response response);
  // Appends `drafts` to `project` and answers `body` with `status` once durable.
  void append_then_answer(const CallPtr& call, std::string project,
                          std::vector<ledger::EventDraft> drafts, http::status status,
                          boost::json::value body);

  void metrics_get(const CallPtr& call);
  void login(const CallPtr& call);
  void logout(const CallPtr& call);
  void projects_list(const CallPtr& call);
  void projects_create(const CallPtr& call);
  void events_append(const CallPtr& call);
  void submission_head(const CallPtr& call);
  void submission_post(const CallPtr& call);
  void case_get(const CallPtr& call);
  void case_history(const CallPtr& call);
  void cases_list(const CallPtr& call);
  void report_get(const CallPtr& call);
  void audit_changes(const CallPtr& call);
  void audit_access(const CallPtr& call);
  void ledger_head(const CallPtr& call);
  void ledger_events(const CallPtr& call);
  void ledger_checkpoint(const CallPtr& call);
  void ledger_checkpoints(const CallPtr& call);
  void ledger_inclusion_proof(const CallPtr& call);
  void ledger_consistency_proof(const CallPtr& call);
  void ledger_public_key(const CallPtr& call);
  void sync(const CallPtr& call);
  void password_change(const CallPtr& call);
  void totp_enroll(const CallPtr& call);
  void totp_confirm(const CallPtr& call);
  void org_unit_add(const CallPtr& call);
  void user_scopes_put(const CallPtr& call);
  void user_roles_put(const CallPtr& call);
  void role_put(const CallPtr& call);
  void case_type_put(const CallPtr& call);
  void policy_get(const CallPtr& call);
  void policy_put(const CallPtr& call);
  void break_glass(const CallPtr& call);
  void security_audit(const CallPtr& call);

  TimeUs now() const { return options_.clock(); }

  ledger::Ledger& ledger_;
  Views views_;
  const ServerMetrics& metrics_;
  ApiOptions options_;
  boost::asio::thread_pool password_pool_;
  std::array<std::uint8_t, 32> cache_key_{};  // Keys the Basic cache's credential hashes.
  mutable std::mutex cache_mutex_;
  std::unordered_map<std::string, BasicCacheEntry> basic_cache_;
  // Bearer sessions: the time of each one's last request (idle time-outs). Kept in memory: after
  // a restart a session counts as idle since it began (failing closed).
  mutable std::mutex seen_mutex_;
  std::unordered_map<std::string, TimeUs> last_seen_;
  // TOTP steps being used by log-ins not yet durable, so one code cannot log in twice.
  std::mutex totp_mutex_;
  std::set<std::pair<std::string, std::uint64_t>> totp_in_flight_;
  std::atomic<std::size_t> in_flight_{0};
};

}  // namespace trail::server
