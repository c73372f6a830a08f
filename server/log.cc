#include "server/log.h"

#include <atomic>
#include <chrono>
#include <ctime>
#include <iterator>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <boost/json/serialize.hpp>
#include <boost/json/serializer.hpp>
#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "ledger/assert.h"

namespace trail::server {
namespace {

// Lines from this logger carry a payload that is already `"msg":...,<fields>`; every other
// logger's payload is plain text and gets escaped. Only this file logs through it, so text
// from elsewhere can never smuggle raw JSON into a line.
constexpr std::string_view kFieldsLoggerName = "trail.fields";
constexpr std::string_view kTextLoggerName = "trail";

using Buffer = spdlog::memory_buf_t;

void append(Buffer& out, std::string_view text) { out.append(text.data(), text.data() + text.size()); }

// Appends `text` as a quoted, escaped JSON string, without allocating for short strings.
void append_json_string(Buffer& out, std::string_view text) {
  boost::json::serializer serializer;
  serializer.reset(boost::json::string_view{text.data(), text.size()});
  char chunk[256];
  while (!serializer.done()) {
    const boost::json::string_view part = serializer.read(chunk, sizeof chunk);
    out.append(part.data(), part.data() + part.size());
  }
}

// {"ts":"<RFC 3339 UTC, ms>","level":"<spdlog level>", then the message, then "}\n".
// Thread safety: one instance per sink, called under the sink's lock.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, Buffer& dest) override {
    append(dest, R"({"ts":")");
    append_timestamp(msg.time, dest);
    append(dest, R"(","level":")");
    const auto level = spdlog::level::to_string_view(msg.level);
    dest.append(level.data(), level.data() + level.size());
    append(dest, R"(",)");
    const std::string_view payload{msg.payload.data(), msg.payload.size()};
    if (std::string_view{msg.logger_name.data(), msg.logger_name.size()} == kFieldsLoggerName) {
      append(dest, payload);
    } else {
      append(dest, R"("msg":)");
      append_json_string(dest, payload);
    }
    append(dest, "}\n");
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }

 private:
  void append_timestamp(spdlog::log_clock::time_point time, Buffer& dest) {
    using std::chrono::duration_cast;
    const auto since_epoch = time.time_since_epoch();
    const auto seconds = duration_cast<std::chrono::seconds>(since_epoch);
    const auto ms = duration_cast<std::chrono::milliseconds>(since_epoch - seconds).count();
    if (seconds.count() != cached_seconds_) {  // gmtime once a second, not once a line.
      const std::time_t t = static_cast<std::time_t>(seconds.count());
      std::tm utc{};
      gmtime_r(&t, &utc);
      cached_size_ = std::strftime(cached_, sizeof cached_, "%Y-%m-%dT%H:%M:%S", &utc);
      cached_seconds_ = seconds.count();
    }
    dest.append(cached_, cached_ + cached_size_);
    fmt::format_to(std::back_inserter(dest), ".{:03}Z", ms);
  }

  std::int64_t cached_seconds_ = -1;
  char cached_[32] = {};
  std::size_t cached_size_ = 0;
};

std::mutex g_mutex;                                  // Guards set-up and the owners below.
std::atomic<spdlog::logger*> g_fields{nullptr};      // Fast path for log_request().
std::vector<std::shared_ptr<spdlog::logger>> g_kept;  // Every fields logger ever made.

void set_up_locked(const LogOptions& options) {
  std::shared_ptr<spdlog::sinks::sink> sink = options.sink;
  if (!sink) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  sink->set_formatter(make_json_formatter());
  std::shared_ptr<spdlog::logger> text;
  std::shared_ptr<spdlog::logger> fields;
  if (options.async) {
    if (!spdlog::thread_pool()) spdlog::init_thread_pool(options.queue_entries_max, 1);
    text = std::make_shared<spdlog::async_logger>(std::string{kTextLoggerName}, sink,
                                                  spdlog::thread_pool(),
                                                  spdlog::async_overflow_policy::block);
    fields = std::make_shared<spdlog::async_logger>(std::string{kFieldsLoggerName}, sink,
                                                    spdlog::thread_pool(),
                                                    spdlog::async_overflow_policy::block);
  } else {
    text = std::make_shared<spdlog::logger>(std::string{kTextLoggerName}, sink);
    fields = std::make_shared<spdlog::logger>(std::string{kFieldsLoggerName}, sink);
  }
  text->set_level(options.level);
  fields->set_level(options.level);
  spdlog::set_default_logger(text);
  g_kept.push_back(fields);
  g_fields.store(fields.get(), std::memory_order_release);
}

spdlog::logger& fields_logger() {
  if (spdlog::logger* logger = g_fields.load(std::memory_order_acquire)) return *logger;
  const std::lock_guard lock{g_mutex};
  if (g_fields.load(std::memory_order_relaxed) == nullptr) {
    LogOptions options;
    options.async = false;
    set_up_locked(options);
  }
  return *g_fields.load(std::memory_order_relaxed);
}

}  // namespace

std::unique_ptr<spdlog::formatter> make_json_formatter() {
  return std::make_unique<JsonFormatter>();
}

void init_json_logging(const LogOptions& options) {
  const std::lock_guard lock{g_mutex};
  set_up_locked(options);
}

void shutdown_logging() {
  const std::lock_guard lock{g_mutex};
  if (spdlog::logger* fields = g_fields.load(std::memory_order_acquire)) fields->flush();
  g_fields.store(nullptr, std::memory_order_release);
  spdlog::shutdown();  // Drains the async queue, then joins its thread.
}

void log_request(const RequestContext& context, std::string_view method, std::string_view route,
                 unsigned status, std::uint64_t bytes, std::uint64_t duration_us,
                 std::string_view user_id) {
  spdlog::logger& logger = fields_logger();
  if (!logger.should_log(spdlog::level::info)) return;
  Buffer line;  // Inline storage: a typical line is built without touching the heap.
  append(line, R"("msg":"request","request_id":)");
  append_json_string(line, context.request_id);
  append(line, R"(,"method":)");
  append_json_string(line, method);
  append(line, R"(,"route":)");
  append_json_string(line, route);
  fmt::format_to(std::back_inserter(line), R"(,"status":{},"duration_ms":{}.{:03},"bytes":{})",
                 status, duration_us / 1000U, duration_us % 1000U, bytes);
  append(line, R"(,"remote":)");
  append_json_string(line, context.remote_address);
  append(line, R"(,"user":)");
  if (user_id.empty()) {
    append(line, "null");
  } else {
    append_json_string(line, user_id);
  }
  logger.log(spdlog::level::info, spdlog::string_view_t{line.data(), line.size()});
}

void log_fields(spdlog::level::level_enum level, std::string_view msg,
                const boost::json::object& fields) {
  spdlog::logger& logger = fields_logger();
  if (!logger.should_log(level)) return;
  TRAIL_ASSERT(!fields.contains("ts"));
  TRAIL_ASSERT(!fields.contains("level"));
  TRAIL_ASSERT(!fields.contains("msg"));
  Buffer line;
  append(line, R"("msg":)");
  append_json_string(line, msg);
  if (!fields.empty()) {
    const std::string object = boost::json::serialize(fields);  // "{...}": keep the inside.
    append(line, ",");
    append(line, std::string_view{object}.substr(1, object.size() - 2));
  }
  logger.log(level, spdlog::string_view_t{line.data(), line.size()});
}

}  // namespace trail::server
