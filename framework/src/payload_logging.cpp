#include <cppfly/messaging/payload_logging.hpp>

#include <atomic>

namespace cppfly::messaging {
namespace {

std::atomic<bool> enabled{false};

}  // namespace

void set_log_payloads(bool on) noexcept { enabled.store(on, std::memory_order_relaxed); }

bool log_payloads() noexcept { return enabled.load(std::memory_order_relaxed); }

std::string payload_for_log(std::string_view payload) {
  if (!log_payloads()) {
    return std::string("<").append(std::to_string(payload.size())).append(" bytes, not logged>");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out("'");
  for (const char c : payload.substr(0, kPayloadLogLimit)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f && c != '\\' && c != '\'') {
      out.push_back(c);
    } else {
      out.append("\\x").push_back(kHex[byte >> 4U]);
      out.push_back(kHex[byte & 0xfU]);
    }
  }
  out.push_back('\'');
  if (payload.size() > kPayloadLogLimit) {
    out.append("... (").append(std::to_string(payload.size())).append(" bytes)");
  }
  return out;
}

}  // namespace cppfly::messaging
