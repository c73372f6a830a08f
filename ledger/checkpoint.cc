#include "ledger/checkpoint.h"

#include <charconv>
#include <utility>

#include "ledger/assert.h"

namespace trail::ledger {
namespace {

// A line of note text: non-empty, and no newline or other control character.
bool is_valid_line(std::string_view line) {
  return !line.empty() && line.find('\n') == std::string_view::npos &&
         note::is_valid_note_text(line);
}

Status invalid(const std::string& why) {
  return Status::error(Code::kInvalid, "checkpoint " + why);
}

// Decimal without sign or leading zeros ("0" alone is zero) that fits 64 bits.
bool parse_size(std::string_view text, std::uint64_t& out) {
  if (text.empty()) return false;
  if (text.size() > 1 && text[0] == '0') return false;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
  }
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc{} && ptr == end;  // errc::result_out_of_range above 2^64 - 1.
}

}  // namespace

Status validate(const Checkpoint& checkpoint) {
  if (!is_valid_line(checkpoint.origin)) {
    return invalid("origin must be non-empty UTF-8 without control characters");
  }
  for (std::size_t i = 0; i < checkpoint.extensions.size(); ++i) {
    if (!is_valid_line(checkpoint.extensions[i])) {
      return invalid("extension line " + std::to_string(i + 1) +
                     " must be non-empty UTF-8 without control characters");
    }
  }
  return Status::ok();
}

std::string body(const Checkpoint& checkpoint) {
  TRAIL_ASSERT(validate(checkpoint).is_ok());
  std::string out;
  out.append(checkpoint.origin).append("\n");
  out.append(std::to_string(checkpoint.size)).append("\n");
  out.append(to_base64(checkpoint.root)).append("\n");
  for (const std::string& line : checkpoint.extensions) out.append(line).append("\n");
  TRAIL_DEBUG_ASSERT(parse_body(out).is_ok() && *parse_body(out) == checkpoint);
  return out;
}

Result<Checkpoint> parse_body(std::string_view text) {
  if (text.empty() || text.back() != '\n') return invalid("text must end in a newline");
  if (!note::is_valid_note_text(text)) {
    return invalid("text must be UTF-8 without control characters other than newline");
  }
  std::vector<std::string_view> lines;
  for (std::string_view rest = text; !rest.empty();) {
    const std::size_t end = rest.find('\n');
    TRAIL_ASSERT(end != std::string_view::npos);  // `text` ends in "\n".
    lines.push_back(rest.substr(0, end));
    rest.remove_prefix(end + 1);
  }
  if (lines.size() < 3) return invalid("needs origin, size and root lines");

  Checkpoint out;
  if (lines[0].empty()) return invalid("origin must be non-empty");
  out.origin = lines[0];
  if (!parse_size(lines[1], out.size)) {
    return invalid("size must be a decimal without leading zeros below 2^64");
  }
  const auto root = from_base64(lines[2]);
  if (!root.has_value() || root->size() != out.root.size()) {
    return invalid("root must be canonical base64 of 32 bytes");
  }
  std::copy(root->begin(), root->end(), out.root.begin());
  for (std::size_t i = 3; i < lines.size(); ++i) {
    if (lines[i].empty()) return invalid("extension line " + std::to_string(i - 2) + " is empty");
    out.extensions.emplace_back(lines[i]);
  }
  TRAIL_ASSERT(validate(out).is_ok());
  return out;
}

Result<std::string> sign_checkpoint(const Checkpoint& checkpoint, const note::Signer& signer) {
  TRAIL_TRY(validate(checkpoint));
  return signer.sign(body(checkpoint));
}

Result<Checkpoint> open_checkpoint(std::string_view note,
                                   std::span<const note::Verifier> verifiers) {
  Result<std::string> text = note::open(note, verifiers);
  if (!text.is_ok()) return std::move(text).take_status();
  return parse_body(*text);
}

}  // namespace trail::ledger
