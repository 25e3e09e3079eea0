#include "yaml_reader.hpp"

#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include "text.hpp"

namespace cppfly::config::detail {
namespace {

Origin origin_of(const YAML::Mark& mark, const std::string& source) {
  if (mark.is_null()) return Origin{source, 0, 0};
  return Origin{source, mark.line + 1, mark.column + 1};
}

std::string_view kind_name(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return "a scalar";
    default: return "nothing";
  }
}

class Flattener {
 public:
  explicit Flattener(const std::string& source) : source_(source) {}

  void map(const YAML::Node& node, const std::string& prefix) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node key_node = it->first;  // copies: the iterator hands out temporaries
      const YAML::Node value_node = it->second;
      const Origin key_origin = origin_of(key_node.Mark(), source_);
      if (!key_node.IsScalar()) {
        throw ConfigError(fmt::format("{}: {}: keys must be plain names, found {}", key_origin.describe(),
                                      prefix.empty() ? std::string("top level") : printable(prefix),
                                      kind_name(key_node)));
      }
      const std::string& name = key_node.Scalar();
      if (trim(name).empty()) {
        throw ConfigError(fmt::format("{}: {}: empty key", key_origin.describe(),
                                      prefix.empty() ? std::string("top level") : printable(prefix)));
      }
      value(value_node, prefix.empty() ? name : prefix + "." + name, key_origin);
    }
  }

  std::vector<Entry> take() { return std::move(entries_); }

 private:
  void value(const YAML::Node& node, const std::string& key, const Origin& key_origin) {
    Origin value_origin = origin_of(node.Mark(), source_);
    if (value_origin.line == 0) value_origin = key_origin;
    switch (node.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        entries_.push_back(Entry{key, NodeKind::null, {}, key_origin, key_origin});
        return;
      case YAML::NodeType::Scalar:
        entries_.push_back(Entry{key, NodeKind::scalar, node.Scalar(), key_origin, value_origin});
        return;
      case YAML::NodeType::Map:
        entries_.push_back(Entry{key, NodeKind::map, {}, key_origin, value_origin});
        map(node, key);
        return;
      case YAML::NodeType::Sequence: {
        bool all_scalars = true;
        for (const auto& item : node) {
          if (!item.IsScalar() && !item.IsNull()) all_scalars = false;
        }
        if (all_scalars) {
          std::vector<std::string> items;
          for (const auto& item : node) items.push_back(item.IsScalar() ? item.Scalar() : std::string());
          entries_.push_back(Entry{key, NodeKind::scalar, join(items, ","), key_origin, value_origin});
          return;
        }
        entries_.push_back(Entry{key, NodeKind::list, {}, key_origin, value_origin});
        std::size_t index = 0;
        for (const auto& item : node) {
          const std::string item_key = key + "[" + std::to_string(index++) + "]";
          Origin item_origin = origin_of(item.Mark(), source_);
          if (item_origin.line == 0) item_origin = value_origin;
          value(item, item_key, item_origin);
        }
        return;
      }
    }
  }

  const std::string& source_;
  std::vector<Entry> entries_;
};

}  // namespace

std::vector<Entry> read_yaml(std::string_view text, const std::string& source) {
  try {
    std::vector<YAML::Node> documents = YAML::LoadAll(std::string(text));
    const YAML::Node* root = nullptr;
    for (const auto& document : documents) {
      if (document.IsNull()) continue;
      if (root != nullptr) {
        throw ConfigError(fmt::format("{}: only one YAML document per file is supported (found a second one)",
                                      origin_of(document.Mark(), source).describe()));
      }
      root = &document;
    }
    if (root == nullptr) return {};
    if (!root->IsMap()) {
      throw ConfigError(fmt::format("{}: the top level must be a map of keys (such as pyfly:), found {}",
                                    origin_of(root->Mark(), source).describe(), kind_name(*root)));
    }
    Flattener flattener(source);
    flattener.map(*root, "");
    return flattener.take();
  } catch (const YAML::Exception& error) {
    const Origin where = origin_of(error.mark, source);
    throw ConfigError(fmt::format("{}: invalid YAML: {}", where.describe(), printable(error.msg)));
  }
}

}  // namespace cppfly::config::detail
