#include "projections/view_json.h"


namespace trail::proj {
namespace json = boost::json;

boost::json::object case_json(const CaseState& s) {
  json::object out;
  out["case_id"] = format_uuid(s.case_id);
  out["case_type"] = s.case_type;
  out["name"] = s.name;
  out["owner"] = s.owner;
  out["closed"] = s.closed;
  out["opened"] = format_rfc3339(s.opened_us);
  out["modified"] = format_rfc3339(s.modified_us);
  if (s.closed_us != 0) out["closed_at"] = format_rfc3339(s.closed_us);
  out["last_user"] = s.last_user;
  out["last_seq"] = s.last_seq;
  if (s.implicit) out["implicit"] = true;
  json::object fields;
  for (const auto& [name, value] : s.fields) fields[name] = value;
  out["fields"] = std::move(fields);
  json::array indices;
  for (const auto& i : s.indices) {
    indices.push_back({{"name", i.name},
                       {"case_type", i.case_type},
                       {"case_id", i.case_id ? format_uuid(*i.case_id) : ""},
                       {"relationship", i.relationship}});
  }
  out["indices"] = std::move(indices);
  return out;
}

boost::json::object history_json(const HistoryItem& h) {
  json::object out;
  out["case_id"] = format_uuid(h.case_id);
  out["seq"] = h.seq;
  out["server_time"] = format_rfc3339(h.server_time_us);
  out["client_time"] = format_rfc3339(h.client_time_us);
  out["actor"] = h.actor;
  out["device_id"] = h.device_id;
  out["channel"] = ledger::channel_name(h.channel);
  out["event_id"] = format_uuid(h.event_id);
  if (h.via) out["via"] = format_uuid(*h.via);
  out["kind"] = ledger::kind_name(h.kind);
  if (!h.form_xmlns.empty()) out["form_xmlns"] = h.form_xmlns;
  json::array changes;
  for (const auto& c : h.changes) {
    json::object change;
    change["action"] = action_name(c.action);
    if (!c.field.empty()) change["field"] = c.field;
    if (c.prior) change["prior"] = *c.prior;
    if (!c.value.empty() || c.prior) change["value"] = c.value;
    if (c.unchanged) change["unchanged"] = true;
    changes.push_back(std::move(change));
  }
  out["changes"] = std::move(changes);
  return out;
}

boost::json::object access_json(const AccessRow& r) {
  json::object out;
  out["seq"] = r.seq;
  out["server_time"] = format_rfc3339(r.server_time_us);
  out["reader"] = r.reader;
  out["device_id"] = r.device_id;
  out["channel"] = ledger::channel_name(r.channel);
  out["what"] = r.what;
  if (!r.reason.empty()) out["reason"] = r.reason;
  if (!r.address.empty()) out["address"] = r.address;
  if (!r.endpoint.empty()) out["endpoint"] = r.endpoint;
  json::array subjects;
  for (const auto& id : r.subjects) subjects.push_back(json::value(format_uuid(id)));
  out["subjects"] = std::move(subjects);
  out["event_id"] = format_uuid(r.event_id);
  out["outside_capture"] = r.outside_capture;
  if (r.grant) out["grant"] = format_uuid(*r.grant);
  // Only break_glass rows that made a grant have an expiry.
  if (r.grant_expires_us != 0) out["expires_at"] = format_rfc3339(r.grant_expires_us);
  return out;
}



}  // namespace trail::proj
