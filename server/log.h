// Structured logs: every line traild writes to stderr is one JSON object,
//   {"ts":"2024-05-01T12:34:56.789Z","level":"info","msg":"...", <fields>}
// with `ts` in RFC 3339 UTC to the millisecond. Plain spdlog calls anywhere in the process
// (spdlog::info("ledger map grown ...")) become {"ts","level","msg"} lines once
// init_json_logging() has run; log_fields() and log_request() add structured fields.
//
// Privacy: the access line names the route *template* the handler reported ("/v1/cases/{id}"),
// never the raw target, because paths and query strings can carry personal data.
//
// Thread safety: log_request() and log_fields() may be called from any thread. init_json_logging()
// and shutdown_logging() are start-up and exit calls: not concurrently with each other.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include <boost/json/object.hpp>
#include <spdlog/common.h>
#include <spdlog/formatter.h>

#include "server/handler.h"

namespace spdlog::sinks {
class sink;
}  // namespace spdlog::sinks

namespace trail::server {

struct LogOptions {
  spdlog::level::level_enum level = spdlog::level::info;
  // Format and write on a background thread, so a request thread only copies its line into a
  // queue. The queue blocks when full rather than drop lines: an audit server keeps its logs.
  bool async = true;
  std::size_t queue_entries_max = 8192;
  // Where lines go; null means stderr. Tests pass an ostream sink.
  std::shared_ptr<spdlog::sinks::sink> sink;
};

// Makes JSON lines the default spdlog logger's format and destination. Call at start-up, before
// threads log; calling it again replaces the loggers (the old ones are kept alive, not freed,
// so a racing log call stays valid). Do not call spdlog::set_pattern() afterwards: it would
// replace the JSON formatter. If never called, the first log_request()/log_fields() sets up
// synchronous JSON logging to stderr with LogOptions{} otherwise.
void init_json_logging(const LogOptions& options);

// Flushes queued lines and stops the background thread; call once at exit.
void shutdown_logging();

// One access line per answered request:
//   {"ts","level":"info","msg":"request","request_id","method","route","status",
//    "duration_ms","bytes","remote","user"}
// `route` is the handler's route template ("-" when it gave none); `bytes` is the response
// body size; `user` is null when `user_id` is empty. Strings are JSON-escaped.
void log_request(const RequestContext& context, std::string_view method, std::string_view route,
                 unsigned status, std::uint64_t bytes, std::uint64_t duration_us,
                 std::string_view user_id);

// A line with `msg` and the members of `fields` (which must not use "ts", "level" or "msg").
void log_fields(spdlog::level::level_enum level, std::string_view msg,
                const boost::json::object& fields);

// The formatter behind every line, for sinks built by hand.
std::unique_ptr<spdlog::formatter> make_json_formatter();

}  // namespace trail::server
