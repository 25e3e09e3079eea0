// ThreadSanitizer builds only: C11 threads (<threads.h>) on top of the pthread functions that TSan
// intercepts. librdkafka (Debian's build) starts its threads with thrd_create and locks with
// mtx_*/cnd_*; glibc implements those by calling its pthread internals directly, which neither
// GCC 12's nor LLVM 14's TSan runtime intercepts. A thread started that way has no TSan state and
// crashes in its first malloc, and librdkafka's locks are invisible, so every hand-over through
// its queues would look like a race. Defined in the executable, these take precedence over glibc's
// for librdkafka. glibc's C11 types share the layout of their pthread counterparts (it casts them
// the same way). Initialization and destruction stay glibc's, unseen: TSan would otherwise pair them
// with uses on other threads that librdkafka orders with its atomics, which it cannot see (TSan
// creates its state for a mutex at its first lock). Linked into every executable of the tsan tree
// (cmake/CppflyTsan.cmake).
#include <cerrno>
#include <cstdint>
#include <new>

#include <pthread.h>
#include <threads.h>

namespace {

int from_errno(int error) {
  switch (error) {
    case 0: return thrd_success;
    case ENOMEM: return thrd_nomem;
    case ETIMEDOUT: return thrd_timedout;
    case EBUSY: return thrd_busy;
    default: return thrd_error;
  }
}

pthread_mutex_t* native(mtx_t* mutex) { return reinterpret_cast<pthread_mutex_t*>(mutex); }
pthread_cond_t* native(cnd_t* cond) { return reinterpret_cast<pthread_cond_t*>(cond); }

struct Start {
  thrd_start_t function;
  void* argument;
};

void* trampoline(void* raw) {
  const Start start = *static_cast<Start*>(raw);
  delete static_cast<Start*>(raw);
  return reinterpret_cast<void*>(static_cast<std::intptr_t>(start.function(start.argument)));
}

static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t) && sizeof(cnd_t) == sizeof(pthread_cond_t) &&
              sizeof(thrd_t) == sizeof(pthread_t) && sizeof(once_flag) == sizeof(pthread_once_t));

}  // namespace

extern "C" {

int thrd_create(thrd_t* thread, thrd_start_t function, void* argument) {
  auto* start = new (std::nothrow) Start{function, argument};
  if (start == nullptr) return thrd_nomem;
  pthread_t id{};
  const int error = pthread_create(&id, nullptr, trampoline, start);
  if (error != 0) {
    delete start;
    return from_errno(error);
  }
  *thread = id;
  return thrd_success;
}

int thrd_join(thrd_t thread, int* result) {
  void* value = nullptr;
  const int error = pthread_join(thread, &value);
  if (error == 0 && result != nullptr) *result = static_cast<int>(reinterpret_cast<std::intptr_t>(value));
  return from_errno(error);
}

int thrd_detach(thrd_t thread) { return from_errno(pthread_detach(thread)); }

int mtx_lock(mtx_t* mutex) { return from_errno(pthread_mutex_lock(native(mutex))); }
int mtx_trylock(mtx_t* mutex) { return from_errno(pthread_mutex_trylock(native(mutex))); }
int mtx_timedlock(mtx_t* __restrict mutex, const struct timespec* __restrict deadline) {
  return from_errno(pthread_mutex_timedlock(native(mutex), deadline));
}
int mtx_unlock(mtx_t* mutex) { return from_errno(pthread_mutex_unlock(native(mutex))); }

int cnd_signal(cnd_t* cond) { return from_errno(pthread_cond_signal(native(cond))); }
int cnd_broadcast(cnd_t* cond) { return from_errno(pthread_cond_broadcast(native(cond))); }
int cnd_wait(cnd_t* cond, mtx_t* mutex) { return from_errno(pthread_cond_wait(native(cond), native(mutex))); }
int cnd_timedwait(cnd_t* __restrict cond, mtx_t* __restrict mutex, const struct timespec* __restrict deadline) {
  return from_errno(pthread_cond_timedwait(native(cond), native(mutex), deadline));
}

void call_once(once_flag* flag, void (*function)()) {
  pthread_once(reinterpret_cast<pthread_once_t*>(flag), function);
}

}  // extern "C"
