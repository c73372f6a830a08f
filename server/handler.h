// What the listener hands each request to. Handling may finish later on another thread (an
// append answers once its commit is durable), so a handler answers through a Responder.
#pragma once

#include <functional>
#include <string>

#include "server/http.h"

namespace trail::server {

// Facts about a request that are not in its bytes.
struct RequestContext {
  std::string remote_address;  // Peer IP address, as text.
  std::string request_id;      // Unique per request; echoed in X-Request-Id and in logs.
  bool tls = false;            // Whether the connection is TLS.
  bool loopback = false;       // Whether the peer is a loopback address.
};

// Sends the response. Must be called exactly once, from any thread; it is cheap and does not
// block (it posts to the connection's strand).
using Responder = std::function<void(Response)>;

class Handler {
 public:
  virtual ~Handler() = default;
  // Answers `request`, now or later, through `respond`. Must not throw and must not block on
  // I/O or on a commit (use asynchronous appends).
  virtual void handle(Request request, const RequestContext& context, Responder respond) = 0;
};

}  // namespace trail::server
