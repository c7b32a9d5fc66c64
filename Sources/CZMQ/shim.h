// libzmq for Swift. zmq.h imports cleanly; eventfd(2) is here because Glibc's Swift module does
// not export <sys/eventfd.h> and the ZeroMQ poll loops wake up through one.
#include <zmq.h>
#include <sys/eventfd.h>
