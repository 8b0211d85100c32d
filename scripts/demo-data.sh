#!/bin/sh
# Builds the demo's byte-level dataset from the Debian `fortunes` package (English quotations,
# about 2.5 MB): the text files of /usr/share/games/fortunes concatenated in name order, with
# the '%' separator lines and backspace over-striking removed; the first 90% of the bytes become
# train.bin and the rest val.bin, each byte one little-endian uint16 token (nanoGPT's format, a
# vocabulary of 256).
#
# usage: scripts/demo-data.sh [OUT_DIR]   (default data/fortunes; needs: apt-get install fortunes)
set -eu
out=${1:-data/fortunes}
src=${FORTUNES_DIR:-/usr/share/games/fortunes}
if [ ! -d "$src" ]; then
    echo "demo-data: $src not found; install it with: sudo apt-get install fortunes" >&2
    exit 1
fi
mkdir -p "$out"
if [ -s "$out/train.bin" ] && [ -s "$out/val.bin" ] && [ -s "$out/meta.json" ]; then
    echo "demo-data: $out/train.bin and val.bin exist (delete them to rebuild)"
    exit 0
fi
# Text files only: skip the .dat indexes, the .u8 copies, links, and the ASCII-art collections.
files=$(find "$src" -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' ! -name 'art' \
        ! -name 'ascii-art' | LC_ALL=C sort)
if [ -z "$files" ]; then
    echo "demo-data: no fortune text files in $src" >&2
    exit 1
fi
# shellcheck disable=SC2086
cat $files | perl -e '
    binmode STDIN; local $/; my $t = <STDIN>;
    $t =~ s/.\x08//g;          # over-striking (x BACKSPACE x)
    $t =~ s/^%\n//mg;          # fortune separators
    my $n = length($t);
    my $split = int($n * 0.9);
    my ($out) = @ARGV;
    for my $part (["train", 0, $split], ["val", $split, $n - $split]) {
        my ($name, $off, $len) = @$part;
        open(my $f, ">:raw", "$out/$name.bin.tmp") or die "$out/$name.bin: $!";
        print $f pack("v*", unpack("C*", substr($t, $off, $len)));
        close($f) or die "$out/$name.bin: $!";
        rename("$out/$name.bin.tmp", "$out/$name.bin") or die "$out/$name.bin: $!";
    }
    printf "demo-data: %d bytes of text -> %s/train.bin (%d tokens), %s/val.bin (%d tokens)\n",
        $n, $out, $split, $out, $n - $split;
' "$out"
# The tokenizer goes with the data (as `t6 prepare` records it), so checkpoints trained on it know
# how to turn their ids back into text.
printf '{"tokenizer": {"kind": "bytes"}, "dtype": "uint16", "vocab_size": 256}\n' >"$out/meta.json.tmp"
mv "$out/meta.json.tmp" "$out/meta.json"
