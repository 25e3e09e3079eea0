// cppfly's one-line entry point: the port, messages, listener macros, JSON codec and the application.
#pragma once

#include <cppfly/application.hpp>
#include <cppfly/messaging/broker_factory.hpp>
#include <cppfly/messaging/broker_port.hpp>
#include <cppfly/messaging/dead_letter.hpp>
#include <cppfly/messaging/in_memory_broker.hpp>
#include <cppfly/messaging/json_codec.hpp>
#include <cppfly/messaging/listener.hpp>
#include <cppfly/messaging/message.hpp>
#include <cppfly/messaging/trace_context.hpp>
