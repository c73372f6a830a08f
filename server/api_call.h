// One API request in flight: the request, what was parsed from it, who is calling, and the
// one-shot way to answer it. Shared by the route handlers (api_*.cc); not part of the API.
#pragma once

#include <atomic>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "ledger/status.h"
#include "projections/case_gate.h"
#include "projections/identity.h"
#include "server/api.h"
#include "server/http.h"

namespace trail::server {

// The authenticated caller.
struct Caller {
  proj::UserRecord user;
  std::optional<Digest> token;  // Set for bearer sessions.
  bool two_factor = false;      // The session began with a TOTP or recovery code.
  TimeUs issued_us = 0;         // When the session began (bearer sessions).
  TimeUs idle_since_us = 0;     // The session's previous request (bearer sessions).
};

struct Api::Call {
  Request request;
  RequestContext context;
  Responder respond;
  std::vector<std::string> segments;        // The decoded path.
  std::map<std::string, std::string> query;  // The decoded query.
  std::string route;                         // The route template, e.g. /v1/projects/{p}/cases/{id}
  std::string project;                       // {p}, when the route has one.
  std::string id;                            // {id} or {name}, when the route has one.
  std::optional<Caller> caller;
  // Set by authorize() on project routes: the project and what the caller may do in it.
  std::optional<proj::ProjectRecord> project_record;
  std::optional<proj::CaseGate> gate;
  std::atomic<std::size_t>* in_flight = nullptr;
  bool answered = false;

  // Answers; later calls are ignored. Tags the response with the route and user for the
  // access log (the listener strips those headers before writing).
  void reply(Response response);
  void json(http::status status, const boost::json::value& body);
  // The same for a body already serialised (valid JSON, written by Trail's own code).
  void json_text(http::status status, std::string body);
  void error(http::status status, std::string_view code, std::string_view message);
  // Maps a Status to its answer: kInvalid 400, kNotFound 404, kConflict 409, kBusy 503, and
  // storage failures 500 with a generic message (the detail goes to the log, not the client).
  void fail(const Status& status);
  // The body as a JSON object; answers 400 naming the problem and returns nullopt otherwise.
  std::optional<boost::json::object> body_object();
  const std::string& user_id() const { return caller->user.id; }
  // The device the client names in X-Device-Id (OpenRosa: deviceID), at most 128 bytes.
  std::string device_id() const;
};

}  // namespace trail::server
