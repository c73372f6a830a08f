#include "tools/trailctl/audit_input.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>

namespace trail::tools {

Result<std::string> read_text_file(const std::string& path) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error(Code::kIo, "cannot read " + path + ": " + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return Status::error(Code::kIo, "cannot read " + path);
  return text;
}

Result<ledger::note::Verifier> parse_pubkey(const std::string& arg) {
  std::string text = arg;
  if (arg.starts_with("@")) {
    TRAIL_ASSIGN_OR_RETURN(text, read_text_file(arg.substr(1)));
    const std::size_t first = text.find_first_not_of(" \t\r\n");
    text = first == std::string::npos ? std::string() : text.substr(first);
    text = text.substr(0, text.find_first_of("\r\n"));
  }
  const std::size_t last = text.find_last_not_of(" \t\r\n");
  text = last == std::string::npos ? std::string() : text.substr(0, last + 1);
  auto verifier = ledger::note::Verifier::parse(text);
  if (!verifier.is_ok()) {
    return Status::error(Code::kInvalid, "--pubkey: " + verifier.status().detail() +
                                             " (expected name+keyid+key, as `trailctl keys "
                                             "show` prints it, or @FILE)");
  }
  return verifier;
}

Result<std::unique_ptr<ledger::Ledger>> open_for_audit(const CommonOptions& common) {
  ledger::LedgerOptions options;
  options.data_dir = common.data_dir;
  options.read_only = true;
  return ledger::Ledger::open(options);
}

}  // namespace trail::tools
