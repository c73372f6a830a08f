#include "projections/case_payload.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include "schema/event.capnp.h"

namespace trail::proj {
namespace {

capnp::Text::Reader text(std::string_view s) { return {s.data(), s.size()}; }
std::string str(capnp::Text::Reader t) { return {t.begin(), t.size()}; }

}  // namespace

std::string encode_case_change(const CaseChangeData& change) {
  auto fields = change.fields;
  std::stable_sort(fields.begin(), fields.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  capnp::MallocMessageBuilder message;
  auto out = message.initRoot<schema::Payload>().initCaseChange();
  out.setCaseType(text(change.case_type));
  out.setCaseName(text(change.case_name));
  out.setOwner(text(change.owner));
  auto list = out.initFields(static_cast<unsigned>(fields.size()));
  for (unsigned i = 0; i < fields.size(); ++i) {
    list[i].setName(text(fields[i].first));
    list[i].setValue(text(fields[i].second));
  }
  auto indices = out.initIndices(static_cast<unsigned>(change.indices.size()));
  for (unsigned i = 0; i < change.indices.size(); ++i) {
    const auto& index = change.indices[i];
    indices[i].setName(text(index.name));
    indices[i].setCaseType(text(index.case_type));
    if (index.case_id) indices[i].setCaseId({index.case_id->data(), index.case_id->size()});
    indices[i].setRelationship(text(index.relationship));
  }
  const auto words = capnp::messageToFlatArray(message);
  const auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

Result<CaseChangeData> decode_case_change(std::string_view payload) {
  if (payload.empty() || payload.size() % sizeof(capnp::word) != 0) {
    return Status::error(Code::kCorrupt, "payload is not a Cap'n Proto message");
  }
  // Read in place when the bytes are word-aligned (as a heap string's are); else from a copy.
  kj::Array<capnp::word> copy;
  kj::ArrayPtr<const capnp::word> words;
  if (reinterpret_cast<std::uintptr_t>(payload.data()) % alignof(capnp::word) == 0) {
    words = {reinterpret_cast<const capnp::word*>(payload.data()),
             payload.size() / sizeof(capnp::word)};
  } else {
    copy = kj::heapArray<capnp::word>(payload.size() / sizeof(capnp::word));
    std::memcpy(copy.begin(), payload.data(), payload.size());
    words = copy;
  }
  CaseChangeData out;
  try {
    capnp::FlatArrayMessageReader message(words);
    const auto root = message.getRoot<schema::Payload>();
    if (!root.isCaseChange()) return Status::error(Code::kNotFound, "payload is not a case change");
    const auto change = root.getCaseChange();
    out.case_type = str(change.getCaseType());
    out.case_name = str(change.getCaseName());
    out.owner = str(change.getOwner());
    const auto fields = change.getFields();
    out.fields.reserve(fields.size());
    for (const auto field : fields) {
      out.fields.emplace_back(str(field.getName()), str(field.getValue()));
    }
    for (const auto index : change.getIndices()) {
      CaseIndexData data;
      data.name = str(index.getName());
      data.case_type = str(index.getCaseType());
      const auto id = index.getCaseId();
      if (id.size() == 16) {
        EventId parsed{};
        std::memcpy(parsed.data(), id.begin(), 16);
        data.case_id = parsed;
      } else if (id.size() != 0) {
        return Status::error(Code::kCorrupt, "index case id is not 16 bytes");
      }
      data.relationship = str(index.getRelationship());
      out.indices.push_back(std::move(data));
    }
  } catch (const kj::Exception& e) {
    return Status::error(Code::kCorrupt,
                         std::string("payload does not decode: ") + e.getDescription().cStr());
  }
  return out;
}

const CaseChangeData* case_change_of(const ledger::AppendedEvent& event) {
  using Memo = std::optional<CaseChangeData>;  // nullopt: not a case change.
  auto* memo = std::any_cast<Memo>(&event.decoded);
  if (memo == nullptr) {
    auto change = decode_case_change(event.draft->payload);
    event.decoded = change.is_ok() ? Memo{std::move(*change)} : Memo{};
    memo = std::any_cast<Memo>(&event.decoded);
  }
  return memo->has_value() ? &**memo : nullptr;
}

std::optional<std::string> decode_form_xmlns(std::string_view payload) {
  if (payload.empty() || payload.size() % sizeof(capnp::word) != 0) return std::nullopt;
  auto words = kj::heapArray<capnp::word>(payload.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), payload.data(), payload.size());
  try {
    capnp::FlatArrayMessageReader message(words);
    const auto root = message.getRoot<schema::Payload>();
    if (!root.isForm()) return std::nullopt;
    return str(root.getForm().getXmlns());
  } catch (const kj::Exception&) {
    return std::nullopt;
  }
}

}  // namespace trail::proj
