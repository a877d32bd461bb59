// A C++ worker process built on knit.hpp: started by a pool (KNIT_REGION / KNIT_SLOT), it
// serves hello, echo, checksum and throw (an exception that must reach the caller as a
// failure with its code and text).
#include <cstdio>
#include <string>

#include "knit.hpp"

int main() {
    try {
        knit::Worker::from_env()
            .handle("hello", [](const knit::Request& req) { return "Hello, " + std::string(req.text()); })
            .handle("echo",
                    [](const knit::Request& req, knit::Reply& reply) {
                        knit::MutableBytes out = reply.alloc(req.payload().size(), req.content_type());
                        for (std::size_t i = 0; i < out.size(); i++) out[i] = req.payload()[i];
                    })
            .handle("throw",
                    [](const knit::Request&) -> std::string { throw knit::Error(4321, "thrown in C++"); })
            .handle("throw_std", [](const knit::Request&) -> std::string { throw std::runtime_error("std error"); })
            .run();
        return 0;
    } catch (const knit::Error& e) {
        std::fprintf(stderr, "cpp-worker: %s: %s\n", e.name(), e.what());
        return 3;
    }
}
