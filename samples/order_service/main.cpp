// order_service: run with `order_service --config samples/order_service/pyfly.yaml`.
// The listeners live in order_listeners.cpp; the application finds them through their macros.
#include <cppfly/messaging.hpp>

int main(int argc, char** argv) { return cppfly::Application::run(argc, argv); }
