// trailctl export-chain and verify-bundle: a project's chain as a self-contained bundle of
// envelopes (ciphertext only, exactly as stored) and signed checkpoints, and its check by an
// auditor who holds only the bundle and the checkpoint key (docs/FORMAT.md, "Chain bundles").
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "ledger/ledger.h"
#include "ledger/verify.h"
#include "tools/trailctl/audit_input.h"
#include "tools/trailctl/commands.h"
#include "tools/trailctl/progress.h"

namespace trail::tools {
namespace json = boost::json;

namespace {

constexpr std::string_view kBundleType = "trail-chain-bundle";
constexpr std::int64_t kBundleVersion = 1;

// The checkpoints of a project up to size `last`, by size, read a page at a time: a busy
// project gets one every few seconds, and an export never holds them all.
class CheckpointPages {
 public:
  static constexpr std::size_t kPage = 256;

  CheckpointPages(const ledger::Ledger& ledger, std::string project, std::uint64_t last)
      : ledger_{ledger}, project_{std::move(project)}, last_{last} {}

  // The next one, or nullptr after the last. Errors: the ledger's.
  Result<const ledger::Ledger::StoredCheckpoint*> peek() {
    if (at_ == page_.size()) {
      if (exhausted_) return nullptr;
      TRAIL_ASSIGN_OR_RETURN(page_, ledger_.checkpoints(project_, from_, kPage));
      at_ = 0;
      exhausted_ = page_.size() < kPage;
      if (page_.empty()) return nullptr;
      from_ = page_.back().size + 1;
    }
    if (page_[at_].size > last_) {
      exhausted_ = true;
      page_.clear();
      at_ = 0;
      return nullptr;
    }
    return &page_[at_];
  }
  void pop() { ++at_; }

 private:
  const ledger::Ledger& ledger_;
  std::string project_;
  std::uint64_t last_;
  std::uint64_t from_ = 0;
  std::vector<ledger::Ledger::StoredCheckpoint> page_;
  std::size_t at_ = 0;
  bool exhausted_ = false;
};

std::string checkpoint_line(const ledger::Ledger::StoredCheckpoint& checkpoint) {
  return json::serialize(json::object{
             {"type", "checkpoint"}, {"size", checkpoint.size}, {"note", checkpoint.note}}) +
         "\n";
}

// A whole non-negative JSON number, or nullopt.
std::optional<std::uint64_t> as_u64(const json::value* value) {
  if (value == nullptr) return std::nullopt;
  if (value->is_uint64()) return value->as_uint64();
  if (value->is_int64() && value->as_int64() >= 0) {
    return static_cast<std::uint64_t>(value->as_int64());
  }
  return std::nullopt;
}

const json::string* as_string(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value != nullptr ? value->if_string() : nullptr;
}

}  // namespace

int run_export_chain(const CommonOptions& common, const std::string& project,
                     const std::string& out_path) {
  if (Status s = ledger::validate_project(project); !s.is_ok()) return fail(s.detail());
  auto opened = open_for_audit(common);
  if (!opened.is_ok()) return fail(opened.status().detail());
  const ledger::Ledger& ledger = **opened;
  // The head first: events are never rewritten and checkpoints never removed, so everything
  // up to it can be read afterwards, from later snapshots, beside a running writer.
  auto head = ledger.head(project);
  if (!head.is_ok()) return fail(head.status().detail());
  if (head->seq == 0) {
    std::fprintf(stderr, "trailctl: %s has no events\n", project.c_str());
    return kExitRejected;
  }
  // First the checkpoints up to the head, counted for the header; the second pass writes
  // exactly those: none is ever removed, and any issued meanwhile lies above `last`.
  std::uint64_t checkpoint_count = 0;
  std::uint64_t last = 0;
  if (ledger.has_trees()) {
    CheckpointPages counting{ledger, project, head->seq};
    for (;;) {
      auto next = counting.peek();
      if (!next.is_ok()) return fail(next.status().detail());
      if (*next == nullptr) break;
      ++checkpoint_count;
      last = (*next)->size;
      counting.pop();
    }
  }
  CheckpointPages checkpoints{ledger, project, checkpoint_count > 0 ? last : 0};
  std::uint64_t checkpoints_left = checkpoint_count;
  Status checkpoint_read = Status::ok();
  // Appends the checkpoints of size `size` to `buffer`; false on a read error.
  const auto add_checkpoints_at = [&](std::uint64_t size, std::string& buffer) {
    while (checkpoints_left > 0) {
      auto next = checkpoints.peek();
      if (!next.is_ok()) {
        checkpoint_read = next.status();
        return false;
      }
      if (*next == nullptr || (*next)->size != size) break;
      buffer += checkpoint_line(**next);
      checkpoints.pop();
      --checkpoints_left;
    }
    return true;
  };

  const bool to_stdout = out_path == "-";
  std::FILE* out = to_stdout ? stdout : std::fopen(out_path.c_str(), "wb");
  if (out == nullptr) return fail("cannot write " + out_path + ": " + std::strerror(errno));
  std::string buffer = json::serialize(json::object{{"type", kBundleType},
                                                    {"version", kBundleVersion},
                                                    {"project", project},
                                                    {"events", head->seq},
                                                    {"checkpoints", checkpoint_count}}) +
                       "\n";
  if (!add_checkpoints_at(0, buffer)) return fail(checkpoint_read.detail());
  std::optional<Progress> progress{std::in_place, "exporting"};
  std::uint64_t written = 0;
  bool write_failed = false;
  Status scanned = ledger.scan(project, 1, head->seq, [&](const ledger::StoredEvent& stored) {
    if (stored.seq != written + 1) return false;  // A gap: reported below.
    buffer += "{\"type\":\"event\",\"seq\":" + std::to_string(stored.seq) + ",\"envelope\":\"" +
              to_base64(as_bytes(stored.envelope)) + "\"}\n";
    ++written;
    if (!add_checkpoints_at(written, buffer)) return false;
    if (buffer.size() >= (1U << 20U)) {
      write_failed = std::fwrite(buffer.data(), 1, buffer.size(), out) != buffer.size();
      buffer.clear();
    }
    progress->update(written, head->seq);
    return !write_failed;
  });
  if (!write_failed && !buffer.empty()) {
    write_failed = std::fwrite(buffer.data(), 1, buffer.size(), out) != buffer.size();
  }
  write_failed = (to_stdout ? std::fflush(out) : std::fclose(out)) != 0 || write_failed;
  progress.reset();  // Ends its line before anything else is printed.
  if (!scanned.is_ok()) return fail(scanned.detail());
  if (!checkpoint_read.is_ok()) return fail(checkpoint_read.detail());
  if (write_failed) return fail("cannot write " + out_path + ": " + std::strerror(errno));
  if (written != head->seq) {
    std::fprintf(stderr, "trailctl: %s: event %llu is missing; the bundle is incomplete\n",
                 project.c_str(), static_cast<unsigned long long>(written + 1));
    return kExitRejected;
  }
  std::fprintf(to_stdout ? stderr : stdout, "exported %llu events and %llu checkpoints of %s%s%s\n",
               static_cast<unsigned long long>(written),
               static_cast<unsigned long long>(checkpoint_count), project.c_str(),
               to_stdout ? "" : " to ", to_stdout ? "" : out_path.c_str());
  return kExitOk;
}

int run_verify_bundle(const std::string& path, const std::string& pubkey) {
  auto key = parse_pubkey(pubkey);
  if (!key.is_ok()) return fail(key.status().detail());
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) return fail("cannot read " + path + ": " + std::strerror(errno));
    in = &file;
  }

  std::string line;
  std::uint64_t line_no = 1;
  if (!std::getline(*in, line)) return fail(path + " is empty: not a chain bundle");
  json::error_code ec;
  json::value header_value = json::parse(line, ec);
  const json::object* header = ec ? nullptr : header_value.if_object();
  const json::string* type = header != nullptr ? as_string(*header, "type") : nullptr;
  if (type == nullptr || *type != kBundleType) {
    return fail(path + ": line 1 is not a chain bundle header");
  }
  const json::value* version = header->if_contains("version");
  if (version == nullptr || !version->is_int64() || version->as_int64() != kBundleVersion) {
    return fail(path + ": bundle version is not 1");
  }
  const json::string* project = as_string(*header, "project");
  const auto events = as_u64(header->if_contains("events"));
  const auto checkpoints = as_u64(header->if_contains("checkpoints"));
  if (project == nullptr || !events || !checkpoints ||
      !ledger::validate_project(*project).is_ok()) {
    return fail(path + ": the header needs a project id and event and checkpoint counts");
  }

  ledger::BundleVerifier verifier{std::string(*project), *key};
  std::optional<Progress> progress{std::in_place, "verifying"};
  while (!verifier.problem() && std::getline(*in, line)) {
    ++line_no;
    const std::string at = "line " + std::to_string(line_no) + ": ";
    json::value value = json::parse(line, ec);
    const json::object* object = ec ? nullptr : value.if_object();
    if (object == nullptr) {
      verifier.fail(0, at + "not a JSON object");
      break;
    }
    const json::string* kind = as_string(*object, "type");
    if (kind != nullptr && *kind == "event") {
      const auto seq = as_u64(object->if_contains("seq"));
      const json::string* text = as_string(*object, "envelope");
      const auto bytes = text != nullptr ? from_base64(*text) : std::nullopt;
      if (!seq || !bytes) {
        verifier.fail(seq.value_or(0), at + "an event needs a seq and a base64 envelope");
        break;
      }
      if (!verifier.add_event(*seq, ByteView{bytes->data(), bytes->size()})) break;
      progress->update(verifier.events(), *events);
    } else if (kind != nullptr && *kind == "checkpoint") {
      const auto size = as_u64(object->if_contains("size"));
      const json::string* note = as_string(*object, "note");
      if (!size || note == nullptr) {
        verifier.fail(0, at + "a checkpoint needs a size and a note");
        break;
      }
      if (!verifier.add_checkpoint(*size, *note)) break;
    } else {
      verifier.fail(0, at + "unknown line type");
      break;
    }
  }
  progress.reset();  // Ends its line before anything else is printed.
  if (in->bad()) return fail("cannot read " + path);
  verifier.finish(*events, *checkpoints);
  if (const auto& problem = verifier.problem()) {
    std::printf("TAMPERED project=%s", problem->project.c_str());
    if (problem->seq != 0) std::printf(" seq=%llu", static_cast<unsigned long long>(problem->seq));
    std::printf(": %s (bundle line %llu)\n", problem->reason.c_str(),
                static_cast<unsigned long long>(line_no));
    return kExitRejected;
  }
  std::printf("intact: %llu events of %s, %llu checkpoints signed by %s+%08x",
              static_cast<unsigned long long>(verifier.events()), project->c_str(),
              static_cast<unsigned long long>(verifier.checkpoints()), key->name.c_str(),
              key->key_id);
  if (verifier.covered() < verifier.events()) {
    std::printf("; events %llu..%llu are covered by no checkpoint",
                static_cast<unsigned long long>(verifier.covered() + 1),
                static_cast<unsigned long long>(verifier.events()));
  }
  std::printf("\n");
  return kExitOk;
}

}  // namespace trail::tools
