// GET and POST /v1/projects: the project spaces the caller may see, and opening a new one.
#include "ledger/envelope.h"
#include "server/api_call.h"

namespace trail::server {
namespace json = boost::json;

namespace {

json::object project_json(const proj::ProjectRecord& p) {
  return json::object{{"id", p.id}, {"name", p.name}, {"created_at", format_rfc3339(p.created_us)}};
}

}  // namespace

void Api::projects_list(const CallPtr& call) {
  auto projects = views_.identity->projects(ledger_);
  if (!projects.is_ok()) return call->fail(projects.status());
  json::array out;
  for (const auto& p : *projects) {
    if (call->caller->user.member_of(p.id, &p)) out.push_back(project_json(p));
  }
  call->json(http::status::ok, json::object{{"projects", std::move(out)}});
}

void Api::projects_create(const CallPtr& call) {
  if (!call->caller->user.is_system_admin()) {
    return call->error(http::status::forbidden, "forbidden",
                       "only system administrators open projects");
  }
  auto body = call->body_object();
  if (!body) return;
  const auto* id = body->if_contains("id");
  const auto* name = body->if_contains("name");
  if (id == nullptr || !id->is_string() || name == nullptr || !name->is_string()) {
    return call->error(http::status::bad_request, "invalid",
                       "body must be {\"id\": string, \"name\": string}");
  }
  const std::string project(id->get_string());
  const std::string title(name->get_string());
  if (project == ledger::kSystemProject) {
    return call->error(http::status::bad_request, "invalid", "\"_system\" is reserved");
  }
  if (Status s = ledger::validate_project(project); !s.is_ok()) return call->fail(s);
  if (title.empty() || title.size() > 256) {
    return call->error(http::status::bad_request, "invalid", "\"name\" must be 1 to 256 bytes");
  }
  auto existing = views_.identity->project(ledger_, project);
  if (!existing.is_ok()) return call->fail(existing.status());
  if (*existing) {
    return call->error(http::status::conflict, "conflict", "project " + project + " exists");
  }
  auto draft = proj::identity::project_created(call->user_id(), schema::Channel::API, project, title);
  ledger_.append_async(std::string(ledger::kSystemProject), {std::move(draft)},
                       [call, project, title](Result<std::vector<ledger::Receipt>> r) {
                         if (!r.is_ok()) return call->fail(r.status());
                         call->json(http::status::created,
                                    json::object{{"id", project}, {"name", title}});
                       });
}

}  // namespace trail::server
