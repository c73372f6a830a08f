// trailctl proof inclusion|consistency and trailctl checkpoint: a project's Merkle tree as the
// API serves it (GET .../ledger/proof/..., .../ledger/checkpoint), from the data directory.
#include <cstdio>

#include <boost/json.hpp>

#include "ledger/ledger.h"
#include "tools/trailctl/audit_input.h"
#include "tools/trailctl/commands.h"
#include "tools/trailctl/open_ledger.h"

namespace trail::tools {
namespace json = boost::json;

namespace {

json::array base64_hashes(const std::vector<Digest>& hashes) {
  json::array out;
  out.reserve(hashes.size());
  for (const Digest& h : hashes) out.emplace_back(to_base64(ByteView{h.data(), h.size()}));
  return out;
}

int print_json(const json::object& object) {
  const std::string text = json::serialize(object) + "\n";
  std::fwrite(text.data(), 1, text.size(), stdout);
  return kExitOk;
}

}  // namespace

int run_proof(const CommonOptions& common, const ProofCommand& command) {
  if (Status s = ledger::validate_project(command.project); !s.is_ok()) return fail(s.detail());
  auto opened = open_for_audit(common);
  if (!opened.is_ok()) return fail(opened.status().detail());
  const ledger::Ledger& ledger = **opened;
  if (!ledger.has_trees()) return fail("this data directory holds no Merkle trees");
  auto tree = ledger.tree_size(command.project);
  if (!tree.is_ok()) return fail(tree.status().detail());

  if (command.kind == "inclusion") {
    const std::uint64_t size = command.size.value_or(*tree);
    if (command.seq == 0) return fail("--seq starts at 1");
    if (size > *tree) return fail("--size must be at most the tree size, " + std::to_string(*tree));
    if (command.seq > size) {
      return fail("--seq must be at most the tree size asked for, " + std::to_string(size));
    }
    auto proof = ledger.inclusion_proof(command.project, command.seq - 1, size);
    if (!proof.is_ok()) return fail(proof.status().detail());
    return print_json(json::object{{"leaf_index", command.seq - 1},
                                   {"tree_size", size},
                                   {"hashes", base64_hashes(*proof)}});
  }
  const std::uint64_t to = command.to.value_or(*tree);
  if (command.from == 0) return fail("--from starts at 1 (every tree extends the empty one)");
  if (to > *tree) return fail("--to must be at most the tree size, " + std::to_string(*tree));
  if (command.from > to) return fail("--from must be at most --to, " + std::to_string(to));
  auto proof = ledger.consistency_proof(command.project, command.from, to);
  if (!proof.is_ok()) return fail(proof.status().detail());
  return print_json(
      json::object{{"from", command.from}, {"to", to}, {"hashes", base64_hashes(*proof)}});
}

int run_checkpoint(const CommonOptions& common, const CheckpointCommand& command) {
  if (Status s = ledger::validate_project(command.project); !s.is_ok()) return fail(s.detail());
  std::unique_ptr<ledger::Ledger> ledger;
  if (command.now) {
    auto opened = open_ledger(common, /*read_only=*/false);
    if (!opened.is_ok()) return fail(opened.status().detail());
    ledger = std::move(opened->ledger);
    // Waits until it is durable; none is issued when the latest covers the head.
    if (Status s = ledger->checkpoint_now(command.project); !s.is_ok()) {
      std::fprintf(stderr, "trailctl: %s\n", s.detail().c_str());
      return s.code() == Code::kNotFound ? kExitRejected : kExitError;
    }
  } else {
    auto opened = open_for_audit(common);
    if (!opened.is_ok()) return fail(opened.status().detail());
    ledger = std::move(*opened);
  }
  if (!ledger->has_trees()) return fail("this data directory holds no Merkle trees");
  auto stored = ledger->checkpoint(command.project, command.size);
  if (!stored.is_ok()) return fail(stored.status().detail());
  if (!*stored) {
    std::fprintf(stderr, "trailctl: %s\n",
                 (command.size ? "no checkpoint of " + command.project + " at size " +
                                     std::to_string(*command.size)
                               : command.project + " has no checkpoint yet (--now issues one)")
                     .c_str());
    return kExitRejected;
  }
  std::fwrite((*stored)->note.data(), 1, (*stored)->note.size(), stdout);
  return kExitOk;
}

}  // namespace trail::tools
