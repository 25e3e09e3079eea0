// The listener macros: declare a function (or member function) as a message listener in one go.
//
//   CPPFLY_MESSAGE_LISTENER(handle_order, (const Order& order),
//                           {.topic = "orders", .group_id = "order-service", .retries = 3}) { ... }
//
// The parameter decides decoding: `const Message&` raw; `const nlohmann::json&` parsed; any T with
// nlohmann's from_json decoded. A second parameter `const Message&` gives the record's metadata too.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include <nlohmann/json.hpp>

#include <cppfly/messaging/json_codec.hpp>
#include <cppfly/messaging/listener_options.hpp>
#include <cppfly/messaging/listener_registry.hpp>

namespace cppfly::messaging::detail {

/// Turns the handler's first parameter into a value decoded from the message.
template <class Param>
decltype(auto) decode_param(const Message& message) {
  using T = std::remove_cvref_t<Param>;
  if constexpr (std::is_same_v<T, Message>) {
    return (message);
  } else if constexpr (std::is_same_v<T, nlohmann::json>) {
    return parse_json(message);
  } else {
    return decode_json<T>(message);
  }
}

template <class Second>
constexpr bool is_message_param = std::is_same_v<std::remove_cvref_t<Second>, Message> &&
                                  (std::is_reference_v<Second> ? std::is_const_v<std::remove_reference_t<Second>>
                                                               : true);

/// Wraps any callable taking (Param) or (Param, const Message&) into a MessageHandler.
template <class Param, class... Rest, class Call>
MessageHandler adapt(Call call) {
  static_assert(sizeof...(Rest) <= 1, "a listener takes one parameter, optionally followed by const Message&");
  if constexpr (sizeof...(Rest) == 1) {
    static_assert((is_message_param<Rest> && ...), "a listener's second parameter must be const Message&");
    return [call = std::move(call)](const Message& message) { call(decode_param<Param>(message), message); };
  } else {
    return [call = std::move(call)](const Message& message) { call(decode_param<Param>(message)); };
  }
}

template <class... Args>
struct arg_list {
  template <template <class...> class Apply>
  using apply = Apply<Args...>;
};
template <class F>
struct callable_traits : callable_traits<decltype(&std::remove_cvref_t<F>::operator())> {};
template <class C, class... Args>
struct callable_traits<void (C::*)(Args...) const> : arg_list<Args...> {};
template <class C, class... Args>
struct callable_traits<void (C::*)(Args...)> : arg_list<Args...> {};
template <class... Args>
struct callable_traits<void (*)(Args...)> : arg_list<Args...> {};

template <class... Args>
struct Adapter {
  template <class Call>
  static MessageHandler make(Call call) {
    return adapt<Args...>(std::move(call));
  }
};

/// A static object whose constructor registers a free-function listener (Catch2's technique).
struct ListenerRegistrar {
  template <class Param, class... Rest>
  ListenerRegistrar(const char* name, void (*function)(Param, Rest...), ListenerOptions options, const char* file,
                    int line) noexcept {
    register_listener(name, std::move(options), file, line, typeid(void), [function](void*) {
      return adapt<Param, Rest...>([function](auto&&... args) { function(std::forward<decltype(args)>(args)...); });
    });
  }

  template <class Class, class Param, class... Rest>
  ListenerRegistrar(const char* name, void (Class::*method)(Param, Rest...), ListenerOptions options,
                    const char* file, int line) noexcept {
    register_member<Class, Param, Rest...>(name, method, std::move(options), file, line);
  }

  template <class Class, class Param, class... Rest>
  ListenerRegistrar(const char* name, void (Class::*method)(Param, Rest...) const, ListenerOptions options,
                    const char* file, int line) noexcept {
    register_member<Class, Param, Rest...>(name, method, std::move(options), file, line);
  }

 private:
  template <class Class, class Param, class... Rest, class Method>
  static void register_member(const char* name, Method method, ListenerOptions options, const char* file,
                              int line) noexcept {
    register_listener(name, std::move(options), file, line, typeid(Class), [method](void* self) {
      auto* object = static_cast<Class*>(self);
      return adapt<Param, Rest...>(
          [object, method](auto&&... args) { (object->*method)(std::forward<decltype(args)>(args)...); });
    });
  }

  static void register_listener(const char* name, ListenerOptions options, const char* file, int line,
                                const std::type_info& owner, std::function<MessageHandler(void*)> make) noexcept;
};

/// Registers a lifecycle hook.
struct HookRegistrar {
  HookRegistrar(const char* name, HookPhase phase, void (*function)(Application&), const char* file,
                int line) noexcept;
};

/// Registers a service class the application constructs and owns.
template <class Class>
struct ServiceRegistrar {
  ServiceRegistrar(const char* name, const char* file, int line) noexcept {
    ServiceDefinition service;
    try {
      service.type = typeid(Class);
      service.name = name;
      service.location = {file, line};
      service.create = [] { return std::static_pointer_cast<void>(std::make_shared<Class>()); };
    } catch (...) {
      return;  // out of memory at static initialization: nothing sensible to record
    }
    ListenerRegistry::global().add(std::move(service));
  }
};

}  // namespace cppfly::messaging::detail

namespace cppfly::messaging {

/// A listener built from any callable (a lambda in a test, a handler found at run time), for
/// ListenerRegistry::add(). Decoding follows the callable's parameter, as for the macros.
template <class F>
[[nodiscard]] ListenerDefinition make_listener(std::string name, F function, ListenerOptions options) {
  using Adapter = typename detail::callable_traits<F>::template apply<detail::Adapter>;
  MessageHandler handler = Adapter::make(std::move(function));
  return ListenerDefinition{.name = std::move(name),
                            .options = std::move(options),
                            .location = {"<code>", 0},
                            .owner = typeid(void),
                            .owner_name = {},
                            .make_handler = [handler = std::move(handler)](void*) { return handler; }};
}

}  // namespace cppfly::messaging

#define CPPFLY_DETAIL_CONCAT2(a, b) a##b
#define CPPFLY_DETAIL_CONCAT(a, b) CPPFLY_DETAIL_CONCAT2(a, b)
#define CPPFLY_DETAIL_UNIQUE(prefix) CPPFLY_DETAIL_CONCAT(prefix, __COUNTER__)

/// Declares and registers a listener function; the body follows the macro.
/// CPPFLY_MESSAGE_LISTENER(name, (Param p), {.topic = "t", .group_id = "g"}) { ... }
#define CPPFLY_MESSAGE_LISTENER(name, params, ...)                                                              \
  static void name params;                                                                                   \
  [[maybe_unused]] static const ::cppfly::messaging::detail::ListenerRegistrar CPPFLY_DETAIL_UNIQUE(        \
      cppfly_listener_registrar_)(#name, &name, ::cppfly::messaging::ListenerOptions __VA_ARGS__, __FILE__, \
                                  __LINE__);                                                                 \
  static void name params

/// Registers `Class::method` as a listener; the application binds an instance (bind() or CPPFLY_SERVICE).
/// CPPFLY_MEMBER_LISTENER(OrderService, on_order, {.topic = "orders", .group_id = "billing"});
#define CPPFLY_MEMBER_LISTENER(Class, method, ...)                                                         \
  [[maybe_unused]] static const ::cppfly::messaging::detail::ListenerRegistrar CPPFLY_DETAIL_UNIQUE(      \
      cppfly_member_registrar_)(#Class "::" #method, &Class::method,                                     \
                                ::cppfly::messaging::ListenerOptions __VA_ARGS__, __FILE__, __LINE__)

/// Lets the application construct and own one `Class` (default-constructible) for its member listeners.
#define CPPFLY_SERVICE(Class)                                                                      \
  [[maybe_unused]] static const ::cppfly::messaging::detail::ServiceRegistrar<Class> CPPFLY_DETAIL_UNIQUE( \
      cppfly_service_registrar_)(#Class, __FILE__, __LINE__)

#define CPPFLY_DETAIL_HOOK(name, phase)                                                                      \
  static void name(::cppfly::Application& app);                                                            \
  [[maybe_unused]] static const ::cppfly::messaging::detail::HookRegistrar CPPFLY_DETAIL_UNIQUE(           \
      cppfly_hook_registrar_)(#name, phase, &name, __FILE__, __LINE__);                                     \
  static void name([[maybe_unused]] ::cppfly::Application& app)

/// A function run after the broker started and every listener is bound; the body sees `app`.
#define CPPFLY_AFTER_START(name) CPPFLY_DETAIL_HOOK(name, ::cppfly::messaging::HookPhase::after_start)
/// A function run before the broker stops; the body sees `app`.
#define CPPFLY_BEFORE_STOP(name) CPPFLY_DETAIL_HOOK(name, ::cppfly::messaging::HookPhase::before_stop)
