#include "toml_reader.hpp"

#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "text.hpp"

namespace cppfly::config::detail {
namespace {

Origin origin_of(const toml::source_region& region, const std::string& source) {
  return Origin{source, static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
}

/// A TOML scalar as PyFly would see it after str(): strings as written, numbers and booleans
/// in their usual text, dates and times in TOML's form.
std::string scalar_text(const toml::node& node) {
  if (const auto* s = node.as_string()) return s->get();
  if (const auto* i = node.as_integer()) return std::to_string(i->get());
  if (const auto* f = node.as_floating_point()) return fmt::format("{}", f->get());
  if (const auto* b = node.as_boolean()) return b->get() ? "true" : "false";
  std::ostringstream out;
  node.visit([&](const auto& value) { out << value; });
  return out.str();
}

class Flattener {
 public:
  explicit Flattener(EntrySink& sink) : sink_(sink) {}

  void table(const toml::table& node, const std::string& prefix, int depth) {
    for (const auto& [name, child] : node) {
      const Origin key_origin = origin_of(name.source(), sink_.source());
      value(child, EntrySink::child_key(prefix, std::string(name.str())), key_origin, depth);
    }
  }

 private:
  void value(const toml::node& node, const std::string& key, const Origin& key_origin, int depth) {
    sink_.check_depth(depth, key, key_origin);
    Origin value_origin = origin_of(node.source(), sink_.source());
    if (value_origin.line == 0) value_origin = key_origin;
    if (const auto* t = node.as_table()) {
      sink_.add(Entry{key, NodeKind::map, {}, key_origin, value_origin});
      table(*t, key, depth + 1);
      return;
    }
    if (const auto* a = node.as_array()) {
      bool all_scalars = true;
      for (const auto& item : *a) {
        if (item.is_table() || item.is_array()) all_scalars = false;
      }
      if (all_scalars) {
        std::vector<std::string> items;
        for (const auto& item : *a) {
          items.push_back(scalar_text(item));
          sink_.count_bytes(items.back().size(), value_origin);
        }
        sink_.add(Entry{key, NodeKind::scalar, join(items, ","), key_origin, value_origin});
        return;
      }
      sink_.add(Entry{key, NodeKind::list, {}, key_origin, value_origin});
      std::size_t index = 0;
      for (const auto& item : *a) {
        Origin item_origin = origin_of(item.source(), sink_.source());
        if (item_origin.line == 0) item_origin = value_origin;
        value(item, key + "[" + std::to_string(index++) + "]", item_origin, depth + 1);
      }
      return;
    }
    sink_.add(Entry{key, NodeKind::scalar, scalar_text(node), key_origin, value_origin});
  }

  EntrySink& sink_;
};

}  // namespace

std::vector<Entry> read_toml(std::string_view text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& error) {
    const Origin where = origin_of(error.source(), source);
    throw ConfigError(fmt::format("{}: invalid TOML: {}", where.describe(), printable(error.description())));
  }
  EntrySink sink(source);
  Flattener(sink).table(root, "", 1);
  return sink.take();
}

}  // namespace cppfly::config::detail
