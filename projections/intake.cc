#include "projections/intake.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <utility>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <pugixml.hpp>

#include "ledger/sha256.h"
#include "projections/case_payload.h"

namespace trail::proj {
namespace {

constexpr std::string_view kV2NamespaceSuffix = "/case/transaction/v2";
constexpr std::string_view kFormIdLabel = "trail/intake/form-id/v1";
constexpr std::string_view kCaseIdLabel = "trail/intake/case-id/v1";
constexpr std::string_view kEventIdLabel = "trail/intake/event-id/v1";
constexpr std::string_view kFileIdLabel = "trail/intake/file-id/v1";
constexpr std::string_view kFormContentType = "text/xml";

// Action numbers in derived event ids; also the order actions apply in within a block.
enum class Action : std::uint8_t {
  kCreate = 0,
  kUpdate = 1,
  kIndex = 2,
  kAttachment = 3,
  kClose = 4
};

constexpr std::size_t action_slot(Action a) { return static_cast<std::size_t>(a); }

Status invalid(std::string detail) { return Status::error(Code::kInvalid, std::move(detail)); }

std::string over_limit(std::string_view what, std::size_t limit, std::string_view name) {
  return std::string(what) + " exceeds " + std::to_string(limit) + " (" + std::string(name) + ")";
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

bool has_element_child(const pugi::xml_node& node) {
  for (const auto child : node.children()) {
    if (child.type() == pugi::node_element) return true;
  }
  return false;
}

// Element names are "prefix:local" or "local".
std::string_view local_name(const pugi::xml_node& node) {
  const std::string_view name = node.name();
  const auto colon = name.find(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

// The namespace URI of an element, resolved through the xmlns declarations in scope
// (pugixml does not process namespaces). An unbound prefix resolves to "".
std::string namespace_of(const pugi::xml_node& element) {
  const std::string_view name = element.name();
  const auto colon = name.find(':');
  const std::string attr =
      colon == std::string_view::npos ? "xmlns" : "xmlns:" + std::string(name.substr(0, colon));
  for (pugi::xml_node n = element; n && n.type() == pugi::node_element; n = n.parent()) {
    if (const auto a = n.attribute(attr.c_str())) return a.value();
  }
  return {};
}

bool is_v2_namespace(std::string_view uri) {
  return uri.size() >= kV2NamespaceSuffix.size() &&
         uri.substr(uri.size() - kV2NamespaceSuffix.size()) == kV2NamespaceSuffix;
}

// The element's own text: its text and CDATA children, concatenated (child elements skipped).
std::string text_of(const pugi::xml_node& element) {
  std::string out;
  for (const auto child : element.children()) {
    if (child.type() == pugi::node_pcdata || child.type() == pugi::node_cdata) out += child.value();
  }
  return out;
}

// First 16 bytes of SHA-256(label || 0x00 || data) with the UUID version 8 and variant bits.
EventId derive_id(std::string_view label, std::string_view data) {
  std::string buf;
  buf.reserve(label.size() + 1 + data.size());
  buf.append(label);
  buf.push_back('\0');
  buf.append(data);
  const Digest d = sha256(as_bytes(buf));
  EventId id{};
  std::copy_n(d.begin(), id.size(), id.begin());
  id[6] = static_cast<std::uint8_t>((id[6] & 0x0fU) | 0x80U);
  id[8] = static_cast<std::uint8_t>((id[8] & 0x3fU) | 0x80U);
  return id;
}

std::optional<EventId> canonical_uuid(std::string_view text) {
  auto id = parse_uuid(text);
  if (id && format_uuid(*id) == text) return id;
  return std::nullopt;
}

EventId case_event_id(const EventId& form_id, std::uint32_t block, Action action,
                      std::uint32_t item) {
  std::string data(as_chars(form_id));
  std::uint8_t be[4];
  put_u32_be(be, block);
  data.append(reinterpret_cast<const char*>(be), 4);
  data.push_back(static_cast<char>(action));
  put_u32_be(be, item);
  data.append(reinterpret_cast<const char*>(be), 4);
  return derive_id(kEventIdLabel, data);
}

std::string flat(capnp::MallocMessageBuilder& message) {
  const auto words = capnp::messageToFlatArray(message);
  const auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

capnp::Text::Reader text(std::string_view s) { return {s.data(), s.size()}; }

std::string encode_form(std::string_view xmlns, std::string_view body) {
  capnp::MallocMessageBuilder message;
  auto form = message.initRoot<schema::Payload>().initForm();
  form.setXmlns(text(xmlns));
  form.setContentType(text(kFormContentType));
  form.setBody({reinterpret_cast<const capnp::byte*>(body.data()), body.size()});
  return flat(message);
}

std::string encode_attachment(std::string_view name, std::string_view content_type = {},
                              std::string_view body = {}) {
  capnp::MallocMessageBuilder message;
  auto attachment = message.initRoot<schema::Payload>().initAttachment();
  attachment.setName(text(name));
  attachment.setContentType(text(content_type));
  attachment.setBody({reinterpret_cast<const capnp::byte*>(body.data()), body.size()});
  return flat(message);
}

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points > U+10FFFF).
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80U) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    unsigned lo = 0x80U;
    unsigned hi = 0xbfU;
    if (c >= 0xc2U && c <= 0xdfU) {
      n = 1;
    } else if (c >= 0xe0U && c <= 0xefU) {
      n = 2;
      if (c == 0xe0U) lo = 0xa0U;
      if (c == 0xedU) hi = 0x9fU;
    } else if (c >= 0xf0U && c <= 0xf4U) {
      n = 3;
      if (c == 0xf0U) lo = 0x90U;
      if (c == 0xf4U) hi = 0x8fU;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if (d < (k == 1 ? lo : 0x80U) || d > (k == 1 ? hi : 0xbfU)) return false;
    }
    i += n + 1;
  }
  return true;
}

// Only whitespace (and a UTF-8 byte order mark at the start) may surround the markup; pugixml
// silently drops text outside the root element.
bool only_markup_outside(std::string_view xml) {
  if (xml.substr(0, 3) == "\xEF\xBB\xBF") xml.remove_prefix(3);
  xml = trim(xml);
  return !xml.empty() && xml.front() == '<' && xml.back() == '>';
}

// True when some element repeats an attribute name (pugixml does not check).
bool repeats_attribute(const pugi::xml_node& element) {
  std::vector<std::string_view> names;
  for (const auto attr : element.attributes()) names.emplace_back(attr.name());
  if (names.size() < 2) return false;
  std::sort(names.begin(), names.end());
  return std::adjacent_find(names.begin(), names.end()) != names.end();
}

// True when the raw bytes carry markup that only a DTD uses.
bool mentions_dtd(std::string_view xml) {
  return xml.find("<!DOCTYPE") != std::string_view::npos ||
         xml.find("<!ENTITY") != std::string_view::npos;
}

// Checks element nesting (walked without recursion) and repeated attributes.
Status check_structure(const pugi::xml_document& doc, std::size_t max_depth) {
  std::size_t depth = 1;  // Of n; the document's children are at depth 1.
  pugi::xml_node n = doc.first_child();
  while (n) {
    if (n.type() == pugi::node_element) {
      if (depth > max_depth) return invalid(over_limit("element nesting", max_depth, "max_depth"));
      if (repeats_attribute(n)) return invalid("malformed XML: an element repeats an attribute");
    }
    if (n.first_child()) {
      n = n.first_child();
      ++depth;
      continue;
    }
    while (depth > 1 && !n.next_sibling()) {
      n = n.parent();
      --depth;
    }
    n = n.next_sibling();
  }
  return Status::ok();
}

// The case blocks under `root` (root included), in document order; a block's own subtree is
// not searched further.
std::vector<pugi::xml_node> find_case_blocks(const pugi::xml_node& root) {
  std::vector<pugi::xml_node> blocks;
  pugi::xml_node n = root;
  while (n) {
    bool descend = true;
    if (n.type() == pugi::node_element && local_name(n) == "case") {
      bool block = is_v2_namespace(namespace_of(n));
      if (!block) {
        for (const auto child : n.children()) {
          if (child.type() == pugi::node_element && local_name(child) == "case_id") block = true;
        }
      }
      if (block) {
        blocks.push_back(n);
        descend = false;
      }
    }
    if (descend && n.first_child()) {
      n = n.first_child();
      continue;
    }
    while (n != root && !n.next_sibling()) n = n.parent();
    if (n == root) break;
    n = n.next_sibling();
  }
  return blocks;
}

struct Meta {
  std::string instance_id;
  std::string deprecated_id;
  std::string user_id;
  std::string username;
  std::string device_id;
  std::string time_start;
  std::string time_end;
};

// Reads the first <meta> (or legacy <Meta>) child of the root. Names are matched on their
// local part, case-insensitively (old CommCare writes DeviceID, TimeStart, uid).
Status read_meta(const pugi::xml_node& root, Meta& meta) {
  pugi::xml_node found;
  for (const auto child : root.children()) {
    if (child.type() == pugi::node_element && iequals(local_name(child), "meta")) {
      found = child;
      break;
    }
  }
  if (!found) return Status::ok();
  std::string legacy_uid;
  struct Slot {
    std::string_view name;
    std::string* out;
  };
  const Slot slots[] = {{"instanceID", &meta.instance_id},     {"uid", &legacy_uid},
                        {"deprecatedID", &meta.deprecated_id}, {"userID", &meta.user_id},
                        {"username", &meta.username},          {"deviceID", &meta.device_id},
                        {"timeStart", &meta.time_start},       {"timeEnd", &meta.time_end}};
  for (const auto child : found.children()) {
    if (child.type() != pugi::node_element) continue;
    for (const auto& slot : slots) {
      if (!iequals(local_name(child), slot.name)) continue;
      const std::string value(trim(text_of(child)));
      if (!value.empty() && !slot.out->empty()) {
        return invalid("meta has more than one " + std::string(slot.name));
      }
      *slot.out = value;
    }
  }
  if (meta.instance_id.empty()) meta.instance_id = std::move(legacy_uid);
  return Status::ok();
}

struct Block {
  std::uint32_t index = 0;  // 0-based, document order.
  bool v2 = false;
  std::string case_id;  // Trimmed text.
  EventId subject{};
  std::string actor;
  TimeUs client_time_us = 0;
  pugi::xml_node actions[5];  // By Action.
};

std::string block_label(const Block& b) { return "case block #" + std::to_string(b.index + 1); }

// Reads a v1 block's child element `name` (trimmed text), refusing repeats.
Status v1_child(const Block& b, const pugi::xml_node& node, std::string_view name,
                std::optional<std::string>& out) {
  for (const auto child : node.children()) {
    if (child.type() != pugi::node_element || local_name(child) != name) continue;
    if (out) return invalid(block_label(b) + " has more than one <" + std::string(name) + ">");
    out = std::string(trim(text_of(child)));
  }
  return Status::ok();
}

Status read_block(const pugi::xml_node& node, Block& b, const std::string& form_actor) {
  b.v2 = is_v2_namespace(namespace_of(node));
  std::optional<std::string> case_id;
  std::optional<std::string> user_id;
  std::optional<std::string> date_modified;
  if (b.v2) {
    for (const auto attr : node.attributes()) {
      const std::string_view name = attr.name();
      std::optional<std::string>* slot = name == "case_id"         ? &case_id
                                         : name == "user_id"       ? &user_id
                                         : name == "date_modified" ? &date_modified
                                                                   : nullptr;
      if (slot == nullptr) continue;
      if (*slot) return invalid(block_label(b) + " repeats the attribute " + std::string(name));
      *slot = std::string(trim(attr.value()));
    }
  } else {
    TRAIL_TRY(v1_child(b, node, "case_id", case_id));
    TRAIL_TRY(v1_child(b, node, "user_id", user_id));
    TRAIL_TRY(v1_child(b, node, "date_modified", date_modified));
  }
  if (!case_id) return invalid(block_label(b) + " has no case_id");
  if (case_id->empty()) return invalid(block_label(b) + " has an empty case_id");
  if (case_id->size() > kIntakeIdBytesMax) {
    return invalid(over_limit(block_label(b) + " case_id", kIntakeIdBytesMax, "kIntakeIdBytesMax"));
  }
  b.case_id = *case_id;
  b.subject = case_subject_id(b.case_id);
  if (date_modified) b.client_time_us = parse_device_time(*date_modified).value_or(0);

  static constexpr std::string_view kActionNames[] = {"create", "update", "index", "attachment",
                                                      "close"};
  for (const auto child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    const std::string_view name = local_name(child);
    for (std::size_t a = 0; a < std::size(kActionNames); ++a) {
      if (name != kActionNames[a]) continue;
      if (b.actions[a]) {
        return invalid(block_label(b) + " has more than one <" + std::string(name) + ">");
      }
      b.actions[a] = child;
    }
  }
  // Who acted: the block's user_id; for CaseXML 1.0 also the create's user_id; else the form's.
  b.actor = user_id.value_or("");
  if (b.actor.empty() && !b.v2 && b.actions[action_slot(Action::kCreate)]) {
    std::optional<std::string> create_user;
    TRAIL_TRY(v1_child(b, b.actions[action_slot(Action::kCreate)], "user_id", create_user));
    b.actor = create_user.value_or("");
  }
  if (b.actor.empty()) b.actor = form_actor;
  if (b.actor.size() > ledger::kActorBytesMax) {
    return invalid(
        over_limit(block_label(b) + " user_id", ledger::kActorBytesMax, "kActorBytesMax"));
  }
  return Status::ok();
}

Status check_name(const Block& b, std::string_view what, std::string_view name) {
  if (name.empty()) return invalid(block_label(b) + ": empty " + std::string(what) + " name");
  if (name.size() > kIntakeNameBytesMax) {
    return invalid(over_limit(block_label(b) + " " + std::string(what) + " name",
                              kIntakeNameBytesMax, "kIntakeNameBytesMax"));
  }
  return Status::ok();
}

// Sets change.case_type / case_name / owner when `name` is one of them; false otherwise.
Result<bool> special_property(const Block& b, std::string_view name, const std::string& value,
                              CaseChangeData& change) {
  std::string* slot = name == "case_type" || name == "case_type_id" ? &change.case_type
                      : name == "case_name"                         ? &change.case_name
                      : name == "owner_id"                          ? &change.owner
                                                                    : nullptr;
  if (slot == nullptr) return false;
  if (value.size() > kIntakeCaseTextBytesMax) {
    return invalid(over_limit(block_label(b) + " " + std::string(name), kIntakeCaseTextBytesMax,
                              "kIntakeCaseTextBytesMax"));
  }
  *slot = value;
  return true;
}

// The properties of a <create> or <update>: special ones to the attributes, the rest to fields
// (a name given twice keeps its last value). `skip` names a child to leave out.
Status read_properties(const Block& b, const pugi::xml_node& action, std::string_view skip,
                       CaseChangeData& change) {
  for (const auto child : action.children()) {
    if (child.type() != pugi::node_element) continue;
    const std::string_view name = local_name(child);
    if (name == skip) continue;
    TRAIL_TRY(check_name(b, "property", name));
    std::string value = text_of(child);
    if (value.size() > kIntakeValueBytesMax) {
      return invalid(over_limit(block_label(b) + " property value", kIntakeValueBytesMax,
                                "kIntakeValueBytesMax"));
    }
    TRAIL_ASSIGN_OR_RETURN(const bool special, special_property(b, name, value, change));
    if (special) continue;
    auto it = std::find_if(change.fields.begin(), change.fields.end(),
                           [&](const auto& f) { return f.first == name; });
    if (it != change.fields.end()) {
      it->second = std::move(value);
    } else {
      if (change.fields.size() >= kIntakeFieldsMax) {
        return invalid(
            over_limit(block_label(b) + " properties", kIntakeFieldsMax, "kIntakeFieldsMax"));
      }
      change.fields.emplace_back(name, std::move(value));
    }
  }
  return Status::ok();
}

Status read_indices(const Block& b, const pugi::xml_node& action, CaseChangeData& change) {
  for (const auto child : action.children()) {
    if (child.type() != pugi::node_element) continue;
    CaseIndexData index;
    index.name = local_name(child);
    TRAIL_TRY(check_name(b, "index", index.name));
    index.case_type = child.attribute("case_type").value();
    if (index.case_type.size() > kIntakeCaseTextBytesMax) {
      return invalid(over_limit(block_label(b) + " index case_type", kIntakeCaseTextBytesMax,
                                "kIntakeCaseTextBytesMax"));
    }
    if (const auto rel = child.attribute("relationship")) {
      index.relationship = trim(rel.value());
      if (index.relationship.empty()) {
        return invalid(block_label(b) + ": index has an empty relationship attribute");
      }
      if (index.relationship.size() > kIntakeNameBytesMax) {
        return invalid(over_limit(block_label(b) + " index relationship", kIntakeNameBytesMax,
                                  "kIntakeNameBytesMax"));
      }
    } else {
      index.relationship = "child";
    }
    const std::string target(trim(text_of(child)));
    if (target.size() > kIntakeIdBytesMax) {
      return invalid(
          over_limit(block_label(b) + " index target", kIntakeIdBytesMax, "kIntakeIdBytesMax"));
    }
    if (!target.empty()) {
      if (target == b.case_id) return invalid(block_label(b) + ": a case cannot index itself");
      index.case_id = case_subject_id(target);
    }
    auto it = std::find_if(change.indices.begin(), change.indices.end(),
                           [&](const auto& i) { return i.name == index.name; });
    if (it != change.indices.end()) {
      *it = std::move(index);
    } else {
      if (change.indices.size() >= kIndicesPerBlockMax) {
        return invalid(
            over_limit(block_label(b) + " indices", kIndicesPerBlockMax, "kIndicesPerBlockMax"));
      }
      change.indices.push_back(std::move(index));
    }
  }
  return Status::ok();
}

class Builder {
 public:
  Builder(schema::Channel channel, const EventId& form_id, std::string device_id)
      : channel_{channel}, form_id_{form_id}, device_id_{std::move(device_id)} {}

  void add(const Block& b, Action action, std::uint32_t item, schema::Kind kind, std::string actor,
           std::string payload, std::vector<ledger::EventDraft>& out) const {
    ledger::EventDraft d;
    d.event_id = case_event_id(form_id_, b.index, action, item);
    d.kind = kind;
    d.actor = std::move(actor);
    d.device_id = device_id_;
    d.channel = channel_;
    d.via = form_id_;
    d.client_time_us = b.client_time_us;
    d.subject = b.subject;
    d.payload = std::move(payload);
    out.push_back(std::move(d));
  }

 private:
  schema::Channel channel_;
  EventId form_id_;
  std::string device_id_;
};

Status emit_block(const Block& b, const Builder& builder, std::vector<ledger::EventDraft>& out) {
  if (const auto create = b.actions[action_slot(Action::kCreate)]) {
    CaseChangeData change;
    // CaseXML 1.0 names the creating user inside <create>; it acts for this event.
    std::string actor = b.actor;
    if (!b.v2) {
      std::optional<std::string> create_user;
      TRAIL_TRY(v1_child(b, create, "user_id", create_user));
      if (create_user && !create_user->empty()) actor = *create_user;
      if (actor.size() > ledger::kActorBytesMax) {
        return invalid(
            over_limit(block_label(b) + " user_id", ledger::kActorBytesMax, "kActorBytesMax"));
      }
    }
    TRAIL_TRY(read_properties(b, create, b.v2 ? "" : "user_id", change));
    builder.add(b, Action::kCreate, 0, schema::Kind::CASE_CREATED, std::move(actor),
                encode_case_change(change), out);
  }
  if (const auto update = b.actions[action_slot(Action::kUpdate)]) {
    CaseChangeData change;
    TRAIL_TRY(read_properties(b, update, "", change));
    if (has_element_child(update)) {
      builder.add(b, Action::kUpdate, 0, schema::Kind::CASE_UPDATED, b.actor,
                  encode_case_change(change), out);
    }
  }
  if (const auto index = b.actions[action_slot(Action::kIndex)]) {
    CaseChangeData change;
    TRAIL_TRY(read_indices(b, index, change));
    if (!change.indices.empty()) {
      builder.add(b, Action::kIndex, 0, schema::Kind::CASE_INDEXED, b.actor,
                  encode_case_change(change), out);
    }
  }
  if (const auto attachment = b.actions[action_slot(Action::kAttachment)]) {
    std::uint32_t item = 0;
    for (const auto child : attachment.children()) {
      if (child.type() != pugi::node_element) continue;
      const std::string_view name = local_name(child);
      TRAIL_TRY(check_name(b, "attachment", name));
      // An entry without a src (and without inline text) removes the attachment: skipped.
      const bool present =
          !trim(child.attribute("src").value()).empty() || !trim(text_of(child)).empty();
      if (!present) continue;
      if (item >= kAttachmentsPerBlockMax) {
        return invalid(over_limit(block_label(b) + " attachments", kAttachmentsPerBlockMax,
                                  "kAttachmentsPerBlockMax"));
      }
      builder.add(b, Action::kAttachment, item++, schema::Kind::ATTACHMENT_ADDED, b.actor,
                  encode_attachment(name), out);
    }
  }
  if (b.actions[action_slot(Action::kClose)]) {
    builder.add(b, Action::kClose, 0, schema::Kind::CASE_CLOSED, b.actor,
                encode_case_change(CaseChangeData{}), out);
  }
  return Status::ok();
}

Result<Submission> parse(std::string_view xml, const IntakeOptions& options) {
  if (xml.size() > options.max_bytes) {
    return invalid(over_limit("submission size", options.max_bytes, "max_bytes"));
  }
  if (static_cast<std::size_t>(std::count(xml.begin(), xml.end(), '<')) > kIntakeTagsMax) {
    return invalid(over_limit("markup count", kIntakeTagsMax, "kIntakeTagsMax"));
  }
  if (!valid_utf8(xml)) return invalid("submission is not valid UTF-8");
  pugi::xml_document doc;
  const unsigned flags = pugi::parse_default | pugi::parse_doctype | pugi::parse_ws_pcdata_single;
  const pugi::xml_parse_result parsed =
      doc.load_buffer(xml.data(), xml.size(), flags, pugi::encoding_utf8);
  for (const auto child : doc.children()) {
    if (child.type() == pugi::node_doctype) {
      return invalid("DOCTYPE and entity declarations are not allowed");
    }
  }
  if (!parsed) {
    if (mentions_dtd(xml)) return invalid("DOCTYPE and entity declarations are not allowed");
    return invalid(std::string("malformed XML at byte ") + std::to_string(parsed.offset) + ": " +
                   parsed.description());
  }
  if (!only_markup_outside(xml)) return invalid("malformed XML: text outside the root element");
  pugi::xml_node root;
  for (const auto child : doc.children()) {
    if (child.type() == pugi::node_pcdata || child.type() == pugi::node_cdata) {
      return invalid("malformed XML: text outside the root element");
    }
    if (child.type() != pugi::node_element) continue;
    if (root) return invalid("malformed XML: more than one root element");
    root = child;
  }
  if (!root) return invalid("malformed XML: no root element");
  TRAIL_TRY(check_structure(doc, options.max_depth));

  Submission out;
  // The form id: CommCare names it by the root's namespace; ODK by the root's id attribute.
  out.xmlns = namespace_of(root);
  if (out.xmlns.empty()) out.xmlns = trim(root.attribute("id").value());
  if (out.xmlns.size() > kIntakeIdBytesMax) {
    return invalid(over_limit("form id (xmlns)", kIntakeIdBytesMax, "kIntakeIdBytesMax"));
  }
  Meta meta;
  TRAIL_TRY(read_meta(root, meta));
  if (meta.instance_id.empty()) {
    return invalid("meta/instanceID is missing (OpenRosa requires it)");
  }
  if (meta.instance_id.size() > kIntakeIdBytesMax) {
    return invalid(over_limit("meta/instanceID", kIntakeIdBytesMax, "kIntakeIdBytesMax"));
  }
  out.instance_id = meta.instance_id;
  out.deprecated_id = meta.deprecated_id;

  ledger::EventDraft form;
  form.event_id = form_event_id(meta.instance_id);
  form.kind = schema::Kind::FORM_SUBMITTED;
  form.actor = !meta.user_id.empty()    ? meta.user_id
               : !meta.username.empty() ? meta.username
                                        : options.fallback_actor;
  if (form.actor.empty()) return invalid("the form names no user and there is no fallback actor");
  if (form.actor.size() > ledger::kActorBytesMax) {
    return invalid(over_limit("meta/userID", ledger::kActorBytesMax, "kActorBytesMax"));
  }
  form.device_id = !meta.device_id.empty() ? meta.device_id : options.device_id;
  if (form.device_id.size() > ledger::kDeviceIdBytesMax) {
    return invalid(over_limit("meta/deviceID", ledger::kDeviceIdBytesMax, "kDeviceIdBytesMax"));
  }
  form.channel = options.channel;
  std::optional<TimeUs> when = parse_device_time(meta.time_end);
  if (!when) when = parse_device_time(meta.time_start);
  form.client_time_us = when.value_or(0);
  form.payload = encode_form(out.xmlns, xml);

  const auto nodes = find_case_blocks(root);
  if (nodes.size() > kCaseBlocksMax) {
    return invalid(over_limit("case blocks", kCaseBlocksMax, "kCaseBlocksMax"));
  }
  const Builder builder(options.channel, form.event_id, form.device_id);
  std::string form_actor = form.actor;
  out.events.push_back(std::move(form));
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    Block b;
    b.index = static_cast<std::uint32_t>(i);
    TRAIL_TRY(read_block(nodes[i], b, form_actor));
    TRAIL_TRY(emit_block(b, builder, out.events));
    if (out.events.size() > ledger::kBatchEventsMax) {
      return invalid(over_limit("events", ledger::kBatchEventsMax, "kBatchEventsMax"));
    }
  }
  for (const auto& d : out.events) TRAIL_TRY(ledger::validate_draft(d));
  return out;
}

}  // namespace

EventId form_event_id(std::string_view instance_id) {
  std::string_view uuid = instance_id;
  if (uuid.substr(0, 5) == "uuid:") uuid.remove_prefix(5);
  if (auto id = canonical_uuid(uuid)) return *id;
  return derive_id(kFormIdLabel, instance_id);
}

Status add_file(Submission& submission, std::string_view name, std::string_view content_type,
                std::string_view body) {
  if (submission.events.empty()) return invalid("the submission has no form event");
  if (name.empty() || name.size() > kIntakeNameBytesMax) {
    return invalid("an attachment name must be 1 to " + std::to_string(kIntakeNameBytesMax) +
                   " bytes (kIntakeNameBytesMax)");
  }
  if (content_type.size() > kIntakeCaseTextBytesMax) {
    return invalid("an attachment content type is over " + std::to_string(kIntakeCaseTextBytesMax) +
                   " bytes");
  }
  if (submission.events.size() >= ledger::kBatchEventsMax) {
    return invalid(over_limit("events", ledger::kBatchEventsMax, "kBatchEventsMax"));
  }
  const ledger::EventDraft& form = submission.events.front();
  std::string key = submission.instance_id;
  key.push_back('\0');
  key.append(name);
  ledger::EventDraft file;
  file.event_id = derive_id(kFileIdLabel, key);
  file.kind = schema::Kind::ATTACHMENT_ADDED;
  file.actor = form.actor;
  file.device_id = form.device_id;
  file.channel = form.channel;
  file.via = form.event_id;
  file.client_time_us = form.client_time_us;
  file.payload = encode_attachment(name, content_type, body);
  TRAIL_TRY(ledger::validate_draft(file));
  submission.events.push_back(std::move(file));
  return Status::ok();
}

EventId case_subject_id(std::string_view case_id) {
  if (auto id = canonical_uuid(case_id)) return *id;
  return derive_id(kCaseIdLabel, case_id);
}

std::optional<TimeUs> parse_device_time(std::string_view s) {
  s = trim(s);
  if (s.size() < 10 || s.size() > 64) return std::nullopt;
  if (auto t = parse_rfc3339(s)) return t;
  std::string out(s.substr(0, 10));
  if (s.size() == 10) return parse_rfc3339(out + "T00:00:00Z");
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return std::nullopt;
  out += 'T';
  std::size_t end = 11;
  while (end < s.size() && ((s[end] >= '0' && s[end] <= '9') || s[end] == ':' || s[end] == '.')) {
    ++end;
  }
  std::string time(s.substr(11, end - 11));
  if (time.size() == 5) time += ":00";  // HH:MM
  out += time;
  const std::string_view zone = s.substr(end);
  auto digits = [](std::string_view d) {
    return std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (zone.empty() || zone == "Z" || zone == "z") {
    out += 'Z';
  } else if (zone[0] == '+' || zone[0] == '-') {
    const std::string_view rest = zone.substr(1);
    if (rest.size() == 2 && digits(rest)) {
      out.append(zone).append(":00");
    } else if (rest.size() == 4 && digits(rest)) {
      out.append(zone.substr(0, 3)).append(":").append(rest.substr(2));
    } else if (rest.size() == 5 && rest[2] == ':') {
      out.append(zone);
    } else {
      return std::nullopt;
    }
  } else {
    return std::nullopt;
  }
  return parse_rfc3339(out);
}

Result<Submission> parse_submission(std::string_view xml, const IntakeOptions& options) {
  try {
    return parse(xml, options);
  } catch (const std::bad_alloc&) {
    return Status::error(Code::kInvalid, "submission too large to process (out of memory)");
  } catch (const std::exception&) {
    return Status::error(Code::kInvalid, "submission could not be processed");
  } catch (const kj::Exception&) {
    return Status::error(Code::kInvalid, "submission could not be encoded");
  }
}

}  // namespace trail::proj
