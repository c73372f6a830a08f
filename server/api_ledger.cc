// A project's Merkle tree as auditors check it (RFC 6962 / RFC 9162, C2SP tlog-checkpoint):
// signed checkpoints, inclusion and consistency proofs, and the key that signs checkpoints.
// Hashes and signed notes only: nothing here opens a payload. Every project route needs the
// verify_ledger authority; the public key is public and needs no authentication.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/api_call.h"
#include "server/request_parts.h"

namespace trail::server {
namespace json = boost::json;

namespace {

// GET .../ledger/checkpoints pages: sizes per answer by default and at most.
constexpr std::uint64_t kCheckpointPageDefault = 1000;
constexpr std::uint64_t kCheckpointPageMax = 10000;

// 200 text/plain: a signed note or a key line, byte for byte.
Response text_response(const Request& request, std::string body) {
  Response response{http::status::ok, request.version()};
  response.set(http::field::server, "trail");
  response.set(http::field::content_type, "text/plain; charset=utf-8");
  response.set(http::field::cache_control, "no-store");
  response.keep_alive(request.keep_alive());
  response.body() = std::move(body);
  response.prepare_payload();
  return response;
}

json::array base64_hashes(const std::vector<Digest>& hashes) {
  json::array out;
  out.reserve(hashes.size());
  for (const Digest& h : hashes) out.emplace_back(to_base64(ByteView{h.data(), h.size()}));
  return out;
}

// Whether the ledger keeps trees; answers 404 itself when it does not (a data directory from
// before them opened read-only; traild itself always has them).
bool require_trees(const ledger::Ledger& ledger, const Api::CallPtr& call) {
  if (ledger.has_trees()) return true;
  call->error(http::status::not_found, "not_found", "this ledger keeps no Merkle trees");
  return false;
}

// A required whole-number query parameter; answers 400 naming it and returns nullopt when it
// is absent or not a number.
std::optional<std::uint64_t> required_u64(const Api::CallPtr& call, std::string_view name) {
  if (!query_value(call->query, name)) {
    call->error(http::status::bad_request, "invalid", "'" + std::string(name) + "' is required");
    return std::nullopt;
  }
  auto value = query_u64(call->query, name, 0);
  if (!value.is_ok()) {
    call->fail(value.status());
    return std::nullopt;
  }
  return *value;
}

}  // namespace

void Api::ledger_checkpoint(const CallPtr& call) {
  if (!authorize(call, proj::kVerifyLedger)) return;
  if (Status s = check_known(call->query, {"fresh"}); !s.is_ok()) return call->fail(s);
  bool fresh = false;
  if (auto v = query_value(call->query, "fresh")) {
    if (*v != "true" && *v != "false") {
      return call->error(http::status::bad_request, "invalid", "'fresh' is true or false");
    }
    fresh = *v == "true";
  }
  if (!require_trees(ledger_, call)) return;
  if (!fresh) return answer_latest_checkpoint(call);
  // Answers once the checkpoint's commit is durable (none is issued when the latest covers
  // the head), without holding an I/O thread meanwhile.
  ledger_.checkpoint_now_async(call->project, [this, call](Status s) {
    if (s.code() == Code::kNotFound) {
      return call->error(http::status::not_found, "not_found", "the project has no events yet");
    }
    if (!s.is_ok()) return call->fail(s);
    answer_latest_checkpoint(call);
  });
}

void Api::answer_latest_checkpoint(const CallPtr& call) {
  auto latest = ledger_.checkpoint(call->project);
  if (!latest.is_ok()) return call->fail(latest.status());
  if (!*latest) {
    return call->error(http::status::not_found, "not_found", "the project has no checkpoint yet");
  }
  call->reply(text_response(call->request, std::move((*latest)->note)));
}

void Api::ledger_checkpoints(const CallPtr& call) {
  if (!authorize(call, proj::kVerifyLedger)) return;
  if (Status s = check_known(call->query, {"size", "from", "limit"}); !s.is_ok()) {
    return call->fail(s);
  }
  if (!require_trees(ledger_, call)) return;
  if (query_value(call->query, "size")) {
    auto size = query_u64(call->query, "size", 0);
    if (!size.is_ok()) return call->fail(size.status());
    auto at = ledger_.checkpoint(call->project, *size);
    if (!at.is_ok()) return call->fail(at.status());
    if (!*at) {
      return call->error(http::status::not_found, "not_found",
                         "no checkpoint at size " + std::to_string(*size));
    }
    return call->reply(text_response(call->request, std::move((*at)->note)));
  }
  // The sizes available, a page at a time (a busy project gets one every few seconds).
  auto from = query_u64(call->query, "from", 0);
  if (!from.is_ok()) return call->fail(from.status());
  auto limit = query_u64(call->query, "limit", kCheckpointPageDefault);
  if (!limit.is_ok()) return call->fail(limit.status());
  if (*limit == 0 || *limit > kCheckpointPageMax) {
    return call->error(http::status::bad_request, "invalid",
                       "'limit' must be 1.." + std::to_string(kCheckpointPageMax));
  }
  auto page = ledger_.checkpoints(call->project, *from, static_cast<std::size_t>(*limit) + 1);
  if (!page.is_ok()) return call->fail(page.status());
  json::value next = nullptr;
  if (page->size() > *limit) {
    next = page->back().size;
    page->pop_back();
  }
  json::array sizes;
  sizes.reserve(page->size());
  for (const auto& c : *page) sizes.push_back(json::object{{"size", c.size}});
  call->json(http::status::ok, json::object{{"checkpoints", std::move(sizes)}, {"next", next}});
}

void Api::ledger_inclusion_proof(const CallPtr& call) {
  if (!authorize(call, proj::kVerifyLedger)) return;
  if (Status s = check_known(call->query, {"seq", "size"}); !s.is_ok()) return call->fail(s);
  if (!require_trees(ledger_, call)) return;
  const auto seq = required_u64(call, "seq");
  if (!seq) return;
  auto tree = ledger_.tree_size(call->project);
  if (!tree.is_ok()) return call->fail(tree.status());
  auto size = query_u64(call->query, "size", *tree);
  if (!size.is_ok()) return call->fail(size.status());
  if (*seq == 0) return call->error(http::status::bad_request, "invalid", "'seq' starts at 1");
  if (*size > *tree) {
    return call->error(http::status::bad_request, "invalid",
                       "'size' must be at most the tree size, " + std::to_string(*tree));
  }
  if (*seq > *size) {
    return call->error(http::status::bad_request, "invalid",
                       "'seq' must be at most the tree size asked for, " + std::to_string(*size));
  }
  auto proof = ledger_.inclusion_proof(call->project, *seq - 1, *size);
  if (!proof.is_ok()) return call->fail(proof.status());
  call->json(http::status::ok, json::object{{"leaf_index", *seq - 1},
                                            {"tree_size", *size},
                                            {"hashes", base64_hashes(*proof)}});
}

void Api::ledger_consistency_proof(const CallPtr& call) {
  if (!authorize(call, proj::kVerifyLedger)) return;
  if (Status s = check_known(call->query, {"from", "to"}); !s.is_ok()) return call->fail(s);
  if (!require_trees(ledger_, call)) return;
  const auto from = required_u64(call, "from");
  if (!from) return;
  auto tree = ledger_.tree_size(call->project);
  if (!tree.is_ok()) return call->fail(tree.status());
  auto to = query_u64(call->query, "to", *tree);
  if (!to.is_ok()) return call->fail(to.status());
  if (*from == 0) {
    return call->error(http::status::bad_request, "invalid",
                       "'from' starts at 1 (every tree extends the empty one)");
  }
  if (*to > *tree) {
    return call->error(http::status::bad_request, "invalid",
                       "'to' must be at most the tree size, " + std::to_string(*tree));
  }
  if (*from > *to) {
    return call->error(http::status::bad_request, "invalid",
                       "'from' must be at most 'to', " + std::to_string(*to));
  }
  auto proof = ledger_.consistency_proof(call->project, *from, *to);
  if (!proof.is_ok()) return call->fail(proof.status());
  call->json(http::status::ok,
             json::object{{"from", *from}, {"to", *to}, {"hashes", base64_hashes(*proof)}});
}

void Api::ledger_public_key(const CallPtr& call) {
  if (Status s = check_known(call->query, {}); !s.is_ok()) return call->fail(s);
  auto vkey = ledger_.verifier_key();
  if (!vkey.is_ok()) {
    return call->error(http::status::not_found, "not_found", "this server has no checkpoint key");
  }
  call->reply(text_response(call->request, std::move(*vkey) + "\n"));
}

}  // namespace trail::server
