// The t6 subcommands. Each takes the arguments after its name and returns the exit status.
#pragma once

namespace t6::cli {

int cmd_info(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_demo(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_kv(int argc, char** argv);
int cmd_quantize(int argc, char** argv);
int cmd_import(int argc, char** argv);
int cmd_bench_decode(int argc, char** argv);  // t6 bench decode
int cmd_bench_serve(int argc, char** argv);   // t6 bench serve
int cmd_tokenize(int argc, char** argv);
int cmd_tokenizer(int argc, char** argv);
int cmd_prepare(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_bench_train(int argc, char** argv);    // t6 bench train
int cmd_bench_kernels(int argc, char** argv);  // t6 bench kernels
int cmd_eval(int argc, char** argv);           // t6 eval ppl | mc
int cmd_serve(int argc, char** argv);
int cmd_study(int argc, char** argv);
int cmd_convert(int argc, char** argv);  // t6 convert (MHA/GQA -> TPA)

}  // namespace t6::cli
