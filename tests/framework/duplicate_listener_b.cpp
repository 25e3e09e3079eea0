// A second listener named handle_order (each has internal linkage, so this links; the registry reports it).
#include <cppfly/messaging.hpp>

// line 5 below, as duplicate_listener_a.cpp expects
CPPFLY_MESSAGE_LISTENER(handle_order, (const cppfly::messaging::Message&), {.topic = "orders"}) {}
