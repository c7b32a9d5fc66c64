// libzmq for Swift. Nothing to wrap yet: zmq.h imports cleanly.
#include <zmq.h>
