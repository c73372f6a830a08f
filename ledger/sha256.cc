#include "ledger/sha256.h"

#include <openssl/evp.h>

#include <array>
#include <cstring>

#include "ledger/assert.h"

namespace trail {
namespace {

// One fetched algorithm for the process; one context per thread, reused across calls.
const EVP_MD* sha256_md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  TRAIL_ASSERT(md != nullptr);
  return md;
}

struct Context {
  Context() : ctx(EVP_MD_CTX_new()) { TRAIL_ASSERT(ctx != nullptr); }
  ~Context() { EVP_MD_CTX_free(ctx); }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  EVP_MD_CTX* ctx;
};

EVP_MD_CTX* thread_context() {
  thread_local Context context;
  TRAIL_ASSERT(EVP_DigestInit_ex2(context.ctx, sha256_md(), nullptr) == 1);
  return context.ctx;
}

Digest finish(EVP_MD_CTX* ctx) {
  Digest out{};
  unsigned int size = 0;
  TRAIL_ASSERT(EVP_DigestFinal_ex(ctx, out.data(), &size) == 1);
  TRAIL_ASSERT(size == out.size());
  return out;
}

}  // namespace

Digest sha256(ByteView data) {
  EVP_MD_CTX* ctx = thread_context();
  TRAIL_ASSERT(EVP_DigestUpdate(ctx, data.data(), data.size()) == 1);
  return finish(ctx);
}

Digest leaf_hash(ByteView data) {
  static constexpr std::uint8_t kLeafPrefix = 0x00;
  EVP_MD_CTX* ctx = thread_context();
  TRAIL_ASSERT(EVP_DigestUpdate(ctx, &kLeafPrefix, 1) == 1);
  TRAIL_ASSERT(EVP_DigestUpdate(ctx, data.data(), data.size()) == 1);
  return finish(ctx);
}

Digest node_hash(const Digest& left, const Digest& right) {
  // One contiguous input and one update: this runs once per appended event (the tree).
  std::array<std::uint8_t, 1 + 2 * sizeof(Digest)> input;
  input[0] = 0x01;
  std::memcpy(input.data() + 1, left.data(), left.size());
  std::memcpy(input.data() + 1 + left.size(), right.data(), right.size());
  EVP_MD_CTX* ctx = thread_context();
  TRAIL_ASSERT(EVP_DigestUpdate(ctx, input.data(), input.size()) == 1);
  return finish(ctx);
}

}  // namespace trail
