// trailctl verify: walk every chain (or one) and report the first event found bad; with
// --pubkey also every Merkle node and stored checkpoint; with --against, that a project's
// chain extends a checkpoint an auditor saved earlier.
#include <cstdio>
#include <filesystem>
#include <optional>

#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "ledger/verify.h"
#include "tools/trailctl/audit_input.h"
#include "tools/trailctl/commands.h"
#include "tools/trailctl/progress.h"

namespace trail::tools {

namespace {

std::string b64(const Digest& d) { return to_base64(ByteView{d.data(), d.size()}); }

std::string key_label(const ledger::note::Verifier& key) {
  char id[9];
  std::snprintf(id, sizeof id, "%08x", key.key_id);
  return key.name + "+" + id;
}

}  // namespace

int run_verify(const CommonOptions& common, const VerifyCommand& command) {
  ledger::LedgerOptions options;
  options.data_dir = common.data_dir;
  options.read_only = true;
  std::shared_ptr<const ledger::KeyRing> keys;
  if (command.use_keys) {
    auto loaded = ledger::KeyRing::load(common.keys_dir);
    if (!loaded.is_ok()) return fail(loaded.status().detail());
    keys = *loaded;
    options.keys = keys;
  }

  ledger::VerifyOptions verify_options;
  verify_options.project = command.project;
  if (!command.pubkey.empty()) {
    auto key = parse_pubkey(command.pubkey);
    if (!key.is_ok()) return fail(key.status().detail());
    verify_options.checkpoint_key = *key;
    verify_options.check_trees = true;
  }
  if (!command.against.empty()) {
    // Without --pubkey, the key directory's own key, when there is one to read (its key files
    // only: the data directory is still opened without it unless --keys was given).
    if (!verify_options.checkpoint_key) {
      std::shared_ptr<const ledger::KeyRing> own = keys;
      std::error_code ec;
      if (!own && std::filesystem::exists(std::filesystem::path(common.keys_dir) / "signing.key", ec)) {
        if (auto loaded = ledger::KeyRing::load(common.keys_dir); loaded.is_ok()) own = *loaded;
      }
      if (own) verify_options.checkpoint_key = own->signer().verifier();
    }
    auto note = read_text_file(command.against);
    if (!note.is_ok()) return fail(note.status().detail());
    const ledger::note::Verifier* key =
        verify_options.checkpoint_key ? &*verify_options.checkpoint_key : nullptr;
    if (key == nullptr) {
      std::fprintf(stderr, "trailctl: warning: the signature of %s is not checked (no --pubkey "
                           "and no key directory)\n", command.against.c_str());
    }
    auto saved = ledger::open_saved_checkpoint(*note, key);
    if (!saved.is_ok()) {
      if (saved.status().code() == Code::kInvalid) {
        return fail(command.against + " is not a checkpoint: " + saved.status().detail());
      }
      std::printf("REJECTED saved checkpoint %s: %s\n", command.against.c_str(),
                  saved.status().code() == Code::kCorrupt
                      ? ("its signature does not verify with " + key_label(*key) +
                         " (forged or altered)").c_str()
                      : ("it is " + saved.status().detail() + ": a foreign key").c_str());
      return kExitRejected;
    }
    auto project = ledger::checkpoint_project(*saved);
    if (!project.is_ok()) return fail(command.against + ": " + project.status().detail());
    if (command.project && *command.project != *project) {
      return fail(command.against + " is a checkpoint of " + *project + ", not of " +
                  *command.project);
    }
    verify_options.project = *project;
    verify_options.against = *saved;
    verify_options.check_trees = true;
  }

  auto opened = ledger::Ledger::open(options);
  if (!opened.is_ok()) return fail(opened.status().detail());

  std::optional<Progress> progress{std::in_place, "verifying"};
  verify_options.progress = [&](std::uint64_t done, std::uint64_t total) {
    progress->update(done, total);
  };
  auto report = ledger::verify(**opened, verify_options);
  progress.reset();  // Ends its line before anything else is printed.
  if (!report.is_ok()) return fail(report.status().detail());
  if (report->problem) {
    const auto& p = *report->problem;
    std::printf("TAMPERED project=%s", p.project.c_str());
    if (p.seq != 0) std::printf(" seq=%llu", static_cast<unsigned long long>(p.seq));
    std::printf(": %s\n", p.reason.c_str());
    return kExitRejected;
  }
  std::printf("intact: %llu event%s in %llu project%s (%s)\n",
              static_cast<unsigned long long>(report->events), report->events == 1 ? "" : "s",
              static_cast<unsigned long long>(report->projects), report->projects == 1 ? "" : "s",
              report->payloads_opened ? "chains and payload tags checked"
                                      : "chains checked; no keys, payload tags not checked");
  if (report->payloads_unchecked > 0) {
    std::printf("note: %llu payload tags not checked: their cipher needs AES-NI, which this CPU "
                "lacks\n", static_cast<unsigned long long>(report->payloads_unchecked));
  }
  if (report->trees_checked) {
    std::printf("trees: %llu Merkle nodes and %llu checkpoints match the events (%s)\n",
                static_cast<unsigned long long>(report->nodes),
                static_cast<unsigned long long>(report->checkpoints),
                report->checkpoint_signatures
                    ? ("checkpoint signatures checked with " +
                       key_label(*verify_options.checkpoint_key)).c_str()
                    : "checkpoint signatures not checked: no key");
    if (report->trees_behind > 0) {
      std::printf("note: the stored trees of %llu projects lag their chains (written before the "
                  "trees; the next writable open grows them)\n",
                  static_cast<unsigned long long>(report->trees_behind));
    }
  }
  if (verify_options.against) {
    const auto& saved = *verify_options.against;
    std::printf("extends: %s at size %llu (root %s) is a prefix of the current tree of size "
                "%llu (root %s): consistency proof verified\n",
                command.against.c_str(), static_cast<unsigned long long>(saved.size),
                b64(saved.root).c_str(), static_cast<unsigned long long>(report->tree_size),
                b64(report->tree_root).c_str());
  }
  return kExitOk;
}

}  // namespace trail::tools
