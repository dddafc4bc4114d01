/*  wire_recv.c — reading one multipart message off a ZeroMQ socket (see
    nerve_wire_recv_parts() in wire.h). Apart from wire.c, which is the
    codec alone: no socket there, so the fuzzer links it by itself.
*/
#include <nerve/wire.h>

#include <stdbool.h>
#include <zmq.h>

int nerve_wire_recv_parts(void *socket, zmq_msg_t *parts, size_t max, size_t *n, int flags)
{
    *n = 0;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, socket, flags) < 0) {
            zmq_msg_close(&m);
            return *n ? 0 : -1;
        }
        bool more = zmq_msg_more(&m);
        if (*n < max) {
            zmq_msg_init(&parts[*n]);
            zmq_msg_move(&parts[*n], &m);
        }
        zmq_msg_close(&m);
        (*n)++;
        if (!more)
            return 0;
        flags = 0;
    }
}

void nerve_wire_close_parts(zmq_msg_t *parts, size_t n, size_t max)
{
    for (size_t i = 0; i < n && i < max; i++)
        zmq_msg_close(&parts[i]);
}
