#include "yaml_reader.hpp"

#include <yaml-cpp/yaml.h>
#include <yaml-cpp/eventhandler.h>

#include <sstream>

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

/// yaml-cpp 0.7 ends a quoted scalar that is never closed at the end of the text, when the text
/// ends with a line break, and hands back what it read (`provider: "memory` reads as memory).
/// Throws when the quoted scalar that starts at `pos` has no closing quote.
void check_closed_quote(std::string_view text, std::size_t pos, const Origin& where, const std::string& key) {
  if (pos >= text.size() || (text[pos] != '"' && text[pos] != '\'')) return;  // plain or block scalar
  const char quote = text[pos];
  for (std::size_t i = pos + 1; i < text.size(); ++i) {
    if (quote == '"' && text[i] == '\\') {
      ++i;  // an escape: the next character is never the closing quote
    } else if (text[i] == quote) {
      if (quote == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
        ++i;  // '' is a quote inside a single-quoted scalar
      } else {
        return;
      }
    }
  }
  throw ConfigError(fmt::format("{}: {}: invalid YAML: the quoted string is never closed (missing {})",
                                where.describe(), printable(key), quote));
}

class Flattener {
 public:
  Flattener(std::string_view text, EntrySink& sink) : text_(text), sink_(sink) {}

  void map(const YAML::Node& node, const std::string& prefix, int depth) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node key_node = it->first;  // copies: the iterator hands out temporaries
      const YAML::Node value_node = it->second;
      const Origin key_origin = origin_of(key_node.Mark(), sink_.source());
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
      value(value_node, EntrySink::child_key(prefix, name), key_origin, depth);
    }
  }

 private:
  void value(const YAML::Node& node, const std::string& key, const Origin& key_origin, int depth) {
    sink_.check_depth(depth, key, key_origin);
    Origin value_origin = origin_of(node.Mark(), sink_.source());
    if (value_origin.line == 0) value_origin = key_origin;
    switch (node.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        sink_.add(Entry{key, NodeKind::null, {}, key_origin, key_origin});
        return;
      case YAML::NodeType::Scalar:
        if (node.Tag() == "!") check_closed_quote(text_, node.Mark().pos, value_origin, key);
        sink_.add(Entry{key, NodeKind::scalar, node.Scalar(), key_origin, value_origin});
        return;
      case YAML::NodeType::Map:
        sink_.add(Entry{key, NodeKind::map, {}, key_origin, value_origin});
        map(node, key, depth + 1);
        return;
      case YAML::NodeType::Sequence: {
        bool all_scalars = true;
        for (const auto& item : node) {
          if (!item.IsScalar() && !item.IsNull()) all_scalars = false;
        }
        if (all_scalars) {
          std::vector<std::string> items;
          for (const auto& item : node) {
            if (item.IsScalar()) {
              if (item.Tag() == "!") check_closed_quote(text_, item.Mark().pos, value_origin, key);
              sink_.count_bytes(item.Scalar().size(), value_origin);
              items.push_back(item.Scalar());
            } else {
              items.emplace_back();
            }
          }
          sink_.add(Entry{key, NodeKind::scalar, join(items, ","), key_origin, value_origin});
          return;
        }
        sink_.add(Entry{key, NodeKind::list, {}, key_origin, value_origin});
        std::size_t index = 0;
        for (const auto& item : node) {
          const std::string item_key = key + "[" + std::to_string(index++) + "]";
          Origin item_origin = origin_of(item.Mark(), sink_.source());
          if (item_origin.line == 0) item_origin = value_origin;
          value(item, item_key, item_origin, depth + 1);
        }
        return;
      }
    }
  }

  std::string_view text_;
  EntrySink& sink_;
};

/// Counts documents through yaml-cpp's event parser, without building nodes. yaml-cpp 0.7's
/// LoadAll() loops for ever on some invalid text (a lone ',' at the top level): its parser then
/// hands out empty documents without moving on. More documents than any config file has means
/// the parser is stuck, and the text is refused before LoadAll() sees it.
class DocumentCounter final : public YAML::EventHandler {
 public:
  static constexpr int kMaxDocuments = 64;
  void OnDocumentStart(const YAML::Mark& mark) override {
    ++documents;
    last = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  int documents{0};
  YAML::Mark last{YAML::Mark::null_mark()};
};

void check_parser_advances(std::string_view text, const std::string& source) {
  std::istringstream input{std::string(text)};
  YAML::Parser parser(input);
  DocumentCounter counter;
  while (parser.HandleNextDocument(counter)) {
    if (counter.documents > DocumentCounter::kMaxDocuments) {
      throw ConfigError(fmt::format("{}: invalid YAML: the parser cannot get past this point (a stray ',' or other "
                                    "flow indicator outside [ ] or {{ }}?)",
                                    origin_of(counter.last, source).describe()));
    }
  }
}

}  // namespace

std::vector<Entry> read_yaml(std::string_view text, const std::string& source) {
  try {
    check_parser_advances(text, source);
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
    EntrySink sink(source);
    Flattener(text, sink).map(*root, "", 1);
    return sink.take();
  } catch (const YAML::Exception& error) {
    const Origin where = origin_of(error.mark, source);
    throw ConfigError(fmt::format("{}: invalid YAML: {}", where.describe(), printable(error.msg)));
  }
}

}  // namespace cppfly::config::detail
