#include "projections/event_json.h"

#include <algorithm>
#include <map>

#include <boost/json.hpp>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include "projections/case_payload.h"
#include "projections/view_keys.h"
#include "schema/event.capnp.h"

namespace trail::proj {
namespace json = boost::json;
using ledger::EventDraft;

namespace {

Status invalid(std::string detail) { return Status::error(Code::kInvalid, std::move(detail)); }


Result<std::string_view> string_at(const json::object& obj, std::string_view key, bool required) {
  const json::value* v = obj.if_contains(key);
  if (v == nullptr) {
    if (required) return invalid("missing \"" + std::string(key) + "\"");
    return std::string_view{};
  }
  if (!v->is_string()) return invalid("\"" + std::string(key) + "\" must be a string");
  const auto& s = v->get_string();
  return std::string_view{s.data(), s.size()};
}

Result<EventId> uuid_at(const json::object& obj, std::string_view key) {
  TRAIL_ASSIGN_OR_RETURN(auto text, string_at(obj, key, true));
  auto id = parse_uuid(text);
  if (!id) return invalid("\"" + std::string(key) + "\" is not a UUID (8-4-4-4-12 hex, not nil)");
  return *id;
}

Status check_text(std::string_view key, std::string_view value, std::size_t max) {
  if (value.size() > max) {
    return invalid("\"" + std::string(key) + "\" exceeds " + std::to_string(max) + " bytes");
  }
  return Status::ok();
}

Result<std::map<std::string, std::string>> fields_at(const json::object& obj) {
  std::map<std::string, std::string> fields;
  const json::value* v = obj.if_contains("fields");
  if (v == nullptr) return fields;
  if (!v->is_object()) return invalid("\"fields\" must be an object");
  const auto& in = v->get_object();
  if (in.size() > kFieldsMax) {
    return invalid("\"fields\" has " + std::to_string(in.size()) + " entries, more than " +
                   std::to_string(kFieldsMax));
  }
  for (const auto& [name, value] : in) {
    if (name.empty() || name.size() > kFieldNameBytesMax) {
      return invalid("field name must be 1 to " + std::to_string(kFieldNameBytesMax) + " bytes");
    }
    std::string text;
    if (value.is_string()) {
      text.assign(value.get_string().data(), value.get_string().size());
    } else if (value.is_number() || value.is_bool()) {
      text = json::serialize(value);
    } else {
      return invalid("field \"" + std::string(name) + "\" must be a string, number or boolean");
    }
    if (text.size() > kFieldValueBytesMax) {
      return invalid("field \"" + std::string(name) + "\" exceeds " +
                     std::to_string(kFieldValueBytesMax) + " bytes");
    }
    fields.emplace(std::string(name), std::move(text));
  }
  return fields;
}

constexpr std::string_view kKnownKeys[] = {"event_id",  "kind",      "case_id", "actor",
                                           "device_id", "client_time", "fields", "channel",
                                           "via",       "case_type", "case_name", "owner"};

}  // namespace

Result<EventDraft> parse_event_line(std::string_view line) {
  if (line.size() > kLineBytesMax) {
    return invalid("line exceeds " + std::to_string(kLineBytesMax) + " bytes");
  }
  boost::system::error_code ec;
  json::value doc = json::parse(line, ec);
  if (ec) return invalid("malformed JSON: " + ec.message());
  if (!doc.is_object()) return invalid("a line must hold one JSON object");
  return parse_event_object(doc.get_object(), /*actor_required=*/true);
}

Result<EventDraft> parse_event_object(const json::object& obj, bool actor_required) {
  for (const auto& entry : obj) {
    const std::string_view key{entry.key().data(), entry.key().size()};
    if (std::find(std::begin(kKnownKeys), std::end(kKnownKeys), key) == std::end(kKnownKeys)) {
      return invalid("unknown key \"" + std::string(key) + "\"");
    }
  }
  EventDraft draft;
  TRAIL_ASSIGN_OR_RETURN(draft.event_id, uuid_at(obj, "event_id"));
  TRAIL_ASSIGN_OR_RETURN(auto kind_text, string_at(obj, "kind", true));
  auto kind = ledger::parse_kind(kind_text);
  if (!kind) return invalid("unknown kind \"" + std::string(kind_text) + "\"");
  if (!view::is_case_kind(*kind)) {
    return invalid("kind \"" + std::string(kind_text) + "\" is not a case event; only case.* "
                   "kinds may be appended this way");
  }
  draft.kind = *kind;
  TRAIL_ASSIGN_OR_RETURN(draft.subject, uuid_at(obj, "case_id"));
  TRAIL_ASSIGN_OR_RETURN(auto actor, string_at(obj, "actor", actor_required));
  if (actor_required && actor.empty()) return invalid("\"actor\" must not be empty");
  TRAIL_TRY(check_text("actor", actor, ledger::kActorBytesMax));
  draft.actor = std::string(actor);
  TRAIL_ASSIGN_OR_RETURN(auto device, string_at(obj, "device_id", false));
  TRAIL_TRY(check_text("device_id", device, ledger::kDeviceIdBytesMax));
  draft.device_id = std::string(device);
  TRAIL_ASSIGN_OR_RETURN(auto time_text, string_at(obj, "client_time", true));
  auto time = parse_rfc3339(time_text);
  if (!time) return invalid("\"client_time\" is not an RFC 3339 date-time");
  draft.client_time_us = *time;
  draft.channel = schema::Channel::IMPORT;
  if (obj.contains("channel")) {
    TRAIL_ASSIGN_OR_RETURN(auto channel_text, string_at(obj, "channel", true));
    auto channel = ledger::parse_channel(channel_text);
    if (!channel) return invalid("unknown channel \"" + std::string(channel_text) + "\"");
    draft.channel = *channel;
  }
  if (obj.contains("via")) {
    TRAIL_ASSIGN_OR_RETURN(draft.via, uuid_at(obj, "via"));
  }
  TRAIL_ASSIGN_OR_RETURN(auto case_type, string_at(obj, "case_type", false));
  TRAIL_TRY(check_text("case_type", case_type, kCaseTextBytesMax));
  TRAIL_ASSIGN_OR_RETURN(auto case_name, string_at(obj, "case_name", false));
  TRAIL_TRY(check_text("case_name", case_name, kCaseTextBytesMax));
  TRAIL_ASSIGN_OR_RETURN(auto owner, string_at(obj, "owner", false));
  TRAIL_TRY(check_text("owner", owner, kCaseTextBytesMax));
  TRAIL_ASSIGN_OR_RETURN(auto fields, fields_at(obj));
  proj::CaseChangeData change;
  change.case_type = std::string(case_type);
  change.case_name = std::string(case_name);
  change.owner = std::string(owner);
  change.fields.assign(fields.begin(), fields.end());
  draft.payload = proj::encode_case_change(change);
  return draft;
}

Result<std::string> event_to_json(const ledger::OpenedEvent& event) {
  const auto& env = event.envelope;
  json::object out;
  out["seq"] = env.seq;
  out["hash"] = to_hex(event.hash);
  out["prev_hash"] = to_hex(env.prev_hash);
  out["event_id"] = format_uuid(env.event_id);
  out["kind"] = ledger::kind_name(env.kind);
  if (env.subject) out["case_id"] = format_uuid(*env.subject);
  out["actor"] = env.actor;
  out["device_id"] = env.device_id;
  out["channel"] = ledger::channel_name(env.channel);
  if (env.via) out["via"] = format_uuid(*env.via);
  out["client_time"] = format_rfc3339(env.client_time_us);
  out["server_time"] = format_rfc3339(env.server_time_us);
  out["key_id"] = env.key_id;
  out["cipher"] = ledger::cipher_name(env.cipher);
  const auto& payload = event.payload;
  if (payload.size() % sizeof(capnp::word) != 0) {
    return Status::error(Code::kCorrupt, "payload is not a Cap'n Proto message");
  }
  try {
    kj::Array<capnp::word> words = kj::heapArray<capnp::word>(payload.size() / sizeof(capnp::word));
    std::memcpy(words.begin(), payload.data(), payload.size());
    capnp::FlatArrayMessageReader message(words);
    const auto root = message.getRoot<schema::Payload>();
    if (root.isCaseChange()) {
      const auto change = root.getCaseChange();
      if (change.getCaseType().size() > 0) out["case_type"] = change.getCaseType().cStr();
      if (change.getCaseName().size() > 0) out["case_name"] = change.getCaseName().cStr();
      if (change.getOwner().size() > 0) out["owner"] = change.getOwner().cStr();
      json::object fields;
      for (const auto field : change.getFields()) {
        fields[std::string_view(field.getName().begin(), field.getName().size())] =
            std::string_view(field.getValue().begin(), field.getValue().size());
      }
      out["fields"] = std::move(fields);
    }
  } catch (const kj::Exception& e) {
    return Status::error(Code::kCorrupt, std::string("payload does not decode: ") +
                                             e.getDescription().cStr());
  }
  return json::serialize(out);
}

namespace {
void append_hex(std::string& out, const std::uint8_t* bytes, std::size_t count) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (std::size_t i = 0; i < count; ++i) {
    out.push_back(kDigits[bytes[i] >> 4U]);
    out.push_back(kDigits[bytes[i] & 0x0fU]);
  }
}
}  // namespace

void append_receipt_json(std::string& out, const EventId& event_id, const ledger::Receipt& receipt) {
  out += "{\"event_id\":\"";
  // 8-4-4-4-12 hex digits, as format_uuid writes them.
  append_hex(out, event_id.data(), 4);
  for (std::size_t at : {4U, 6U, 8U}) {
    out.push_back('-');
    append_hex(out, event_id.data() + at, 2);
  }
  out.push_back('-');
  append_hex(out, event_id.data() + 10, 6);
  out += "\",\"seq\":";
  out += std::to_string(receipt.seq);
  out += ",\"hash\":\"";
  append_hex(out, receipt.hash.data(), receipt.hash.size());
  out += receipt.duplicate ? "\",\"duplicate\":true}" : "\",\"duplicate\":false}";
}

std::string receipt_to_json(const EventId& event_id, const ledger::Receipt& receipt) {
  std::string out;
  append_receipt_json(out, event_id, receipt);
  return out;
}

}  // namespace trail::proj
