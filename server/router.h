// Request handling without I/O: a pure function from a request to a response, so every route
// is testable without sockets. The listener and sessions (listener.h) feed it.
// Thread safety: handle() may run on every I/O thread at once.
#pragma once

#include "server/http.h"

namespace trail::server {

class Router {
 public:
  // Answers `request`. Never throws; unknown paths get 404 and known paths with another
  // method 405, both with the JSON error body.
  Response handle(const Request& request) const;
};

}  // namespace trail::server
