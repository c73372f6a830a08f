// The OpenRosa Form Submission API (ODK Collect, CommCare): HEAD announces the protocol and the
// largest body accepted; POST takes multipart/form-data with the instance in the part
// `xml_submission_file` and files in the other parts, ingests it exactly as `trailctl submit`
// does (plus the files, as attachment.added events), atomically, and answers 201 with an
// OpenRosaResponse; a form whose instanceID is already stored answers 202 and appends nothing.
#include "projections/intake.h"
#include "server/api_call.h"
#include "server/multipart.h"
#include "server/openrosa_response.h"

namespace trail::server {

namespace {

constexpr std::string_view kSubmissionPart = "xml_submission_file";

Response openrosa_answer(const Request& request, http::status status, std::string_view message,
                         std::size_t accept_bytes) {
  Response response{status, request.version()};
  response.set(http::field::server, "trail");
  response.set("X-OpenRosa-Version", "1.0");
  response.set("X-OpenRosa-Accept-Content-Length", std::to_string(accept_bytes));
  response.set(http::field::cache_control, "no-store");
  response.keep_alive(request.keep_alive());
  if (status != http::status::no_content) {
    response.set(http::field::content_type, "text/xml; charset=utf-8");
    response.body() = openrosa_response(message);
  }
  response.prepare_payload();
  return response;
}

}  // namespace

void Api::submission_head(const CallPtr& call) {
  if (!authorize(call, proj::kSubmit)) return;
  call->reply(openrosa_answer(call->request, http::status::no_content, "", options_.body_bytes_max));
}

void Api::submission_post(const CallPtr& call) {
  if (!authorize(call, proj::kSubmit)) return;
  auto content_type = call->request.find(http::field::content_type);
  if (content_type == call->request.end()) {
    return call->error(http::status::unsupported_media_type, "invalid",
                       "a submission is multipart/form-data");
  }
  auto boundary = multipart_boundary({content_type->value().data(), content_type->value().size()});
  if (!boundary.is_ok()) {
    return call->error(http::status::unsupported_media_type, "invalid", boundary.status().detail());
  }
  const std::string& body = call->request.body();
  auto parts = parse_multipart(body, *boundary);
  if (!parts.is_ok()) return call->fail(parts.status());
  const Part* form = nullptr;
  for (const auto& part : *parts) {
    if (part.name != kSubmissionPart) continue;
    if (form != nullptr) {
      return call->error(http::status::bad_request, "invalid",
                         "more than one xml_submission_file part");
    }
    form = &part;
  }
  if (form == nullptr) {
    return call->error(http::status::bad_request, "invalid", "no xml_submission_file part");
  }
  proj::IntakeOptions options;
  options.fallback_actor = call->user_id();
  options.device_id = call->device_id();
  options.channel = schema::Channel::MOBILE_FORM;
  auto submission = proj::parse_submission(form->body, options);
  if (!submission.is_ok()) return call->fail(submission.status());
  // The actor is who authenticated; what the form claims stays in its XML.
  for (auto& event : submission->events) event.actor = call->user_id();
  for (const auto& part : *parts) {
    if (&part == form) continue;
    const std::string& name = part.filename.empty() ? part.name : part.filename;
    if (Status s = proj::add_file(*submission, name, part.content_type, part.body); !s.is_ok()) {
      return call->fail(s);
    }
  }
  std::shared_ptr<CaptureCheck> check;
  ledger::AppendGuard guard;
  if (!check_capture(call, submission->events, check, guard)) return;
  ledger_.append_async(call->project, std::move(submission->events),
                       [this, call, check](Result<std::vector<ledger::Receipt>> r) {
                         if (!r.is_ok()) return answer_failed_append(call, check, r.status());
                         const bool duplicate = r->front().duplicate;
                         call->reply(openrosa_answer(
                             call->request, duplicate ? http::status::accepted : http::status::created,
                             duplicate ? "This form was already received; nothing was changed."
                                       : "Form received.",
                             options_.body_bytes_max));
                       },
                       std::move(guard));
}

}  // namespace trail::server
