#include "ledger/status.h"

namespace trail {

std::string_view code_name(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kNotFound: return "not_found";
    case Code::kConflict: return "conflict";
    case Code::kInvalid: return "invalid";
    case Code::kBusy: return "busy";
    case Code::kCorrupt: return "corrupt";
    case Code::kIo: return "io";
    case Code::kFatal: return "fatal";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  std::string out{code_name(code_)};
  out += ": ";
  out += detail_;
  return out;
}

}  // namespace trail
