// The listener macros: declare a function (or member function) as a message listener in one go.
//
//   CPPFLY_MESSAGE_LISTENER(handle_order, (const Order& order),
//                           {.topic = "orders", .group_id = "order-service", .retries = 3}) { ... }
//
// The parameter decides decoding: `const Message&` raw; `const nlohmann::json&` parsed; any T with
// nlohmann's from_json decoded. A second parameter `const Message&` gives the record's metadata too.
// A batch listener takes `std::span<const T>` or `const std::vector<T>&` (T decoded as above, or
// Message): records of one partition in offset order (batch_failure.hpp says how one of them fails).
#pragma once

#include <memory>
#include <span>
#include <vector>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include <nlohmann/json.hpp>

#include <cppfly/messaging/batch_failure.hpp>
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

/// A batch listener's parameter: std::span<const T> or std::vector<T> (by const reference or value).
template <class Param>
struct batch_param : std::false_type {};
template <class T>
struct batch_param<std::span<const T>> : std::true_type {
  using element = T;
  static constexpr bool span = true;
};
template <class T>
struct batch_param<std::vector<T>> : std::true_type {
  using element = T;
  static constexpr bool span = false;
};
template <class Param>
constexpr bool is_batch_param = batch_param<std::remove_cvref_t<Param>>::value &&
                                (!std::is_reference_v<Param> || std::is_const_v<std::remove_reference_t<Param>>);

/// Wraps a callable taking a batch parameter into a BatchHandler: every record is decoded first;
/// undecodable ones make a BatchDecodeError (the container dead-letters them and calls again without them).
template <class Param, class... Rest, class Call>
BatchHandler adapt_batch(Call call) {
  static_assert(sizeof...(Rest) == 0, "a batch listener takes one parameter: std::span<const T> or const std::vector<T>&");
  using Traits = batch_param<std::remove_cvref_t<Param>>;
  using T = std::remove_cv_t<typename Traits::element>;
  return [call = std::move(call)](std::span<const Message> records) {
    if constexpr (std::is_same_v<T, Message>) {
      if constexpr (Traits::span) {
        call(records);
      } else {
        const std::vector<Message> copy(records.begin(), records.end());
        call(copy);
      }
    } else {
      std::vector<T> values;
      values.reserve(records.size());
      std::vector<BatchDecodeError::Rejected> rejected;
      for (std::size_t i = 0; i < records.size(); ++i) {
        try {
          values.push_back(decode_param<const T&>(records[i]));
        } catch (const PayloadDecodeError&) {
          rejected.push_back({i, std::current_exception()});
        }
      }
      if (!rejected.empty()) throw BatchDecodeError(std::move(rejected));
      if constexpr (Traits::span) {
        call(std::span<const T>(values));
      } else {
        call(std::as_const(values));
      }
    }
  };
}

/// A batch handler as a MessageHandler (a batch of one): for code that calls make_handler().
inline MessageHandler single_of(BatchHandler batch) {
  return [batch = std::move(batch)](const Message& message) {
    try {
      batch(std::span<const Message>(&message, 1));
    } catch (const BatchDecodeError& e) {
      std::rethrow_exception(e.rejected().front().error);
    } catch (const BatchFailure& e) {
      if (e.cause()) std::rethrow_exception(e.cause());
      throw;
    }
  };
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

template <class First, class... Args>
struct Adapter {
  static constexpr bool batch = is_batch_param<First>;
  template <class Call>
  static MessageHandler make(Call call) {
    if constexpr (batch) {
      return single_of(adapt_batch<First, Args...>(std::move(call)));
    } else {
      return adapt<First, Args...>(std::move(call));
    }
  }
  template <class Call>
  static BatchHandler make_batch(Call call) {
    if constexpr (batch) {
      return adapt_batch<First, Args...>(std::move(call));
    } else {
      return {};
    }
  }
};

/// A static object whose constructor registers a free-function listener (Catch2's technique).
struct ListenerRegistrar {
  template <class Param, class... Rest>
  ListenerRegistrar(const char* name, void (*function)(Param, Rest...), ListenerOptions options, const char* file,
                    int line) noexcept {
    using A = Adapter<Param, Rest...>;
    auto call = [function](auto&&... args) { function(std::forward<decltype(args)>(args)...); };
    std::function<BatchHandler(void*)> make_batch;
    if constexpr (A::batch) make_batch = [call](void*) { return A::make_batch(call); };
    register_listener(name, std::move(options), file, line, typeid(void), [call](void*) { return A::make(call); },
                      std::move(make_batch));
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
    using A = Adapter<Param, Rest...>;
    auto bind = [method](void* self) {
      auto* object = static_cast<Class*>(self);
      return [object, method](auto&&... args) { (object->*method)(std::forward<decltype(args)>(args)...); };
    };
    std::function<BatchHandler(void*)> make_batch;
    if constexpr (A::batch) make_batch = [bind](void* self) { return A::make_batch(bind(self)); };
    register_listener(name, std::move(options), file, line, typeid(Class),
                      [bind](void* self) { return A::make(bind(self)); }, std::move(make_batch));
  }

  static void register_listener(const char* name, ListenerOptions options, const char* file, int line,
                                const std::type_info& owner, std::function<MessageHandler(void*)> make,
                                std::function<BatchHandler(void*)> make_batch) noexcept;
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
  std::function<BatchHandler(void*)> make_batch;
  if constexpr (Adapter::batch) {
    make_batch = [batch = Adapter::make_batch(function)](void*) { return batch; };
  }
  MessageHandler handler = Adapter::make(std::move(function));
  return ListenerDefinition{.name = std::move(name),
                            .options = std::move(options),
                            .location = {"<code>", 0},
                            .owner = typeid(void),
                            .owner_name = {},
                            .make_handler = [handler = std::move(handler)](void*) { return handler; },
                            .make_batch_handler = std::move(make_batch)};
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
