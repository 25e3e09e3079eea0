#include "client_context.hpp"

#include <algorithm>

#include <cppfly/config/secrets.hpp>
#include <cppfly/detail/log.hpp>

namespace cppfly::kafka::detail {
namespace {

// librdkafka calls these from its own threads: nothing may escape.

void on_log(const rd_kafka_t* rk, int level, const char* facility, const char* text) noexcept {
  try {
    // syslog levels: 0..2 emerg/alert/crit, 3 err, 4 warning, 5 notice, 6 info, 7 debug.
    // librdkafka reports transient connection failures at 3; it retries them itself.
    spdlog::level::level_enum mapped = spdlog::level::debug;
    if (level <= 2) {
      mapped = spdlog::level::err;
    } else if (level <= 4) {
      mapped = spdlog::level::warn;
    } else if (level <= 6) {
      mapped = spdlog::level::info;
    }
    auto& logger = cppfly::detail::log();
    if (!logger.should_log(mapped)) return;
    const char* name = rk != nullptr ? rd_kafka_name(rk) : "rdkafka";
    std::string line = text != nullptr ? text : "";
    if (const auto* context = ClientContext::of(rk); context != nullptr) line = context->masked(std::move(line));
    logger.log(mapped, "librdkafka {} {}: {}", name, facility != nullptr ? facility : "-", line);
  } catch (...) {  // NOLINT(bugprone-empty-catch): a log line is not worth a crash
  }
}

void on_error(rd_kafka_t* rk, int error, const char* reason, void* opaque) noexcept {
  try {
    const auto code = static_cast<rd_kafka_resp_err_t>(error);
    std::string text = reason != nullptr ? reason : rd_kafka_err2str(code);
    auto* context = static_cast<ClientContext*>(opaque);
    if (context != nullptr) text = context->masked(std::move(text));
    const std::string who = context != nullptr ? context->description() : std::string(rd_kafka_name(rk));
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
      char fatal[512] = {};
      const auto original = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
      text = std::string("fatal error ") + rd_kafka_err2name(original) + ": " + fatal;
      if (context != nullptr) text = context->masked(std::move(text));
      cppfly::detail::log().error("kafka {}: {}; this client can no longer be used", who, text);
      if (context != nullptr) context->on_fatal();
    } else if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
      cppfly::detail::log().warn("kafka {}: {} (librdkafka keeps retrying)", who, text);
    } else {
      // Transient: librdkafka already logged it and retries.
      cppfly::detail::log().debug("kafka {}: {}", who, text);
    }
    if (context != nullptr) context->record_error(code, std::move(text));
  } catch (...) {  // NOLINT(bugprone-empty-catch)
  }
}

}  // namespace

std::string ClientContext::last_error() const {
  const std::lock_guard lock(mutex_);
  return last_error_;
}

void ClientContext::record_error(rd_kafka_resp_err_t code, std::string error) {
  const std::lock_guard lock(mutex_);
  if (code == RD_KAFKA_RESP_ERR__AUTHENTICATION || code == RD_KAFKA_RESP_ERR__SSL) {
    security_failure_ = {code, error};
  }
  last_error_ = std::move(error);
}

void ClientContext::clear_error() {
  const std::lock_guard lock(mutex_);
  last_error_.clear();
  security_failure_ = {};
}

ClientContext::Failure ClientContext::security_failure() const {
  const std::lock_guard lock(mutex_);
  return security_failure_;
}

std::string ClientContext::masked(std::string text) const {
  // secrets_ is written once, before the client (and so any callback) exists.
  return mask_secrets(std::move(text), secrets_);
}

std::string mask_secrets(std::string text, const std::vector<std::string>& secrets) {
  for (const auto& secret : secrets) {
    if (secret.empty()) continue;
    for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + config::kMasked.size())) {
      text.replace(at, secret.size(), config::kMasked);
    }
  }
  return text;
}

ClientStatistics ClientContext::statistics() const {
  const std::lock_guard lock(mutex_);
  return statistics_;
}

void ClientContext::record_statistics(ClientStatistics statistics) {
  const std::lock_guard lock(mutex_);
  statistics_ = std::move(statistics);
}

namespace {

int on_statistics(rd_kafka_t* rk, char* json, std::size_t size, void* /*opaque*/) noexcept {
  try {
    if (auto* context = ClientContext::of(rk)) context->record_statistics(parse_statistics({json, size}));
  } catch (const std::exception& e) {
    cppfly::detail::log().debug("kafka: unreadable statistics: {}", e.what());
  } catch (...) {  // NOLINT(bugprone-empty-catch): nothing may escape into librdkafka
  }
  return 0;  // librdkafka frees `json`
}

}  // namespace

ClientContext* ClientContext::of(const rd_kafka_t* rk) noexcept {
  return rk != nullptr ? static_cast<ClientContext*>(rd_kafka_opaque(rk)) : nullptr;
}

void install_log_callback(rd_kafka_conf_t* conf) noexcept { rd_kafka_conf_set_log_cb(conf, &on_log); }

void install_context(rd_kafka_conf_t* conf, ClientContext* context) noexcept {
  try {
    std::size_t count = 0;
    const char** dump = rd_kafka_conf_dump(conf, &count);
    std::vector<std::string> secrets;
    for (std::size_t i = 0; i + 1 < count; i += 2) {
      if (dump[i + 1] != nullptr && *dump[i + 1] != '\0' && config::is_sensitive_key(dump[i])) {
        secrets.emplace_back(dump[i + 1]);
      }
    }
    rd_kafka_conf_dump_free(dump, count);
    // Longest first, so a secret that contains another is masked whole.
    std::sort(secrets.begin(), secrets.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
    context->secrets_ = std::move(secrets);
  } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory; the callbacks still mask what they can
  }
  install_log_callback(conf);
  rd_kafka_conf_set_error_cb(conf, &on_error);
  rd_kafka_conf_set_stats_cb(conf, &on_statistics);
  rd_kafka_conf_set_opaque(conf, context);
}

}  // namespace cppfly::kafka::detail
