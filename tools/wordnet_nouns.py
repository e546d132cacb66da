"""Reduce WordNet 3.0's noun database (Debian `wordnet-base`: data.noun + index.noun) to what vista reads:
one line per synset with its lemmas, the sense rank of each lemma (1 = the word's most common meaning)
and its hypernyms. Glosses and the other pointers are dropped. Standard library only; the output is
deterministic, so its sha256 can be pinned.

Usage: wordnet_nouns.py DATA_NOUN INDEX_NOUN OUT
Output lines: offset TAB lemma|lemma TAB rank|rank TAB hypernym|hypernym (offsets as 8 digits).
"""

import sys


def read_synsets(data_noun):
    synsets = {}
    with open(data_noun, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):  # the licence header
                continue
            fields = line.split(" | ")[0].split()
            offset, word_count = fields[0], int(fields[3], 16)
            lemmas = [fields[4 + 2 * i] for i in range(word_count)]
            at = 4 + 2 * word_count
            hypernyms = []
            for i in range(int(fields[at])):
                symbol, target, pos = fields[at + 1 + 4 * i: at + 4 + 4 * i]
                if symbol in ("@", "@i") and pos == "n":
                    hypernyms.append(target)
            synsets[offset] = (lemmas, hypernyms)
    return synsets


def read_sense_ranks(index_noun):
    """(lemma in lower case, synset offset) -> the sense's rank among the lemma's meanings."""
    ranks = {}
    with open(index_noun, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):
                continue
            fields = line.split()
            sense_count = int(fields[2])
            for rank, offset in enumerate(fields[-sense_count:], start=1):
                ranks[(fields[0], offset)] = rank
    return ranks


def main(data_noun, index_noun, out):
    synsets = read_synsets(data_noun)
    ranks = read_sense_ranks(index_noun)
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for offset in sorted(synsets):
            lemmas, hypernyms = synsets[offset]
            # Lemmas carry a syntactic marker in adjectives only, but strip any "(...)" to be safe.
            names = [lemma.split("(")[0] for lemma in lemmas]
            lemma_ranks = [str(ranks.get((name.lower(), offset), 0)) for name in names]
            readable = [name.replace("_", " ") for name in names]
            f.write(f"{offset}\t{'|'.join(readable)}\t{'|'.join(lemma_ranks)}\t{'|'.join(hypernyms)}\n")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
