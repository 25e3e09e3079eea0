// A service for the signal tests (signal_test.cpp): the one-line main, a listener, and a
// before-stop hook that holds the stop until the test writes a line on stdin (bounded), so the
// test can send a second signal while the application is stopping.
#include <cppfly/messaging.hpp>

#include <poll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <iostream>
#include <string>

CPPFLY_MESSAGE_LISTENER(signal_service_greeting, (const cppfly::messaging::Message& message),
                        {.topic = "greetings"}) {
  std::cout << "service: received " << message.value << std::endl;
}

CPPFLY_AFTER_START(signal_service_started) {
  app.broker().publish("greetings", "hello");
  std::cout << "service: started" << std::endl;
}

CPPFLY_BEFORE_STOP(signal_service_hold_stop) {
  std::cout << "service: before-stop waiting" << std::endl;
  pollfd in{STDIN_FILENO, POLLIN, 0};
  if (::poll(&in, 1, 60000) != 1) {
    std::cout << "service: before-stop gave up waiting" << std::endl;
    return;
  }
  std::string line;
  std::getline(std::cin, line);
  std::cout << "service: before-stop released" << std::endl;
}

int main(int argc, char** argv) {
  // A test that dies before it signals this service (a crash, SIGPIPE) must not leave it running.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  return cppfly::Application::run(argc, argv);
}
