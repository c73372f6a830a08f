// The HTTP vocabulary of the server: Beast string-body requests and responses, and the JSON
// error shape every 4xx/5xx carries: {"error": {"code": "...", "message": "..."}}.
#pragma once

#include <string>
#include <string_view>

#include <boost/beast/http.hpp>

namespace trail::server {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// A JSON response with `status` and `body`, keep-alive and version taken from `request`.
Response json_response(const Request& request, http::status status, std::string body);

// The JSON error body for `status`: `code` is a stable machine word, `message` for people.
Response error_response(const Request& request, http::status status, std::string_view code,
                        std::string_view message);

}  // namespace trail::server
