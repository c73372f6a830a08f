#include "server/router.h"

namespace trail::server {

Response Router::handle(const Request& request) const {
  const std::string_view target{request.target().data(), request.target().size()};
  const std::string_view path = target.substr(0, target.find('?'));
  if (path == "/healthz") {
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      return error_response(request, http::status::method_not_allowed, "method_not_allowed",
                            "use GET on /healthz");
    }
    return json_response(request, http::status::ok, R"({"status":"ok"})");
  }
  return error_response(request, http::status::not_found, "not_found", "no such resource");
}

}  // namespace trail::server
