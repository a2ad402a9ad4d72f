"""Constants shared by the LlamaIndex integration tests (a uniquely named module, so that it
never collides with another test tree's ``conftest`` when suites run together)."""

from __future__ import annotations

#: One thread: on a 2-core machine shared with other jobs, llama.cpp's threads that wait on
#: each other make 2 threads 5-20x slower than 1 (measured with SmolLM2, 48 tokens).
N_THREADS = 1
SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM = "all-MiniLM-L6-v2.gguf2.f16.gguf"
#: Greedy decoding without repetition penalty: deterministic, and what small models need.
GREEDY = {"temp": 0.0, "repeat_penalty": 1.0}

#: Real, distinct paragraphs (facts a retriever must tell apart).
DOCUMENTS = {
    "rivers.txt": (
        "The Danube is Europe's second-longest river. It rises in the Black Forest of Germany "
        "and flows for about 2,850 kilometres through ten countries, including Austria, "
        "Hungary and Romania, before emptying into the Black Sea."
    ),
    "photosynthesis.txt": (
        "Photosynthesis is the process by which green plants use sunlight, water and carbon "
        "dioxide to make glucose. It takes place in the chloroplasts, whose chlorophyll absorbs "
        "red and blue light, and it releases oxygen as a by-product."
    ),
    "python_gc.txt": (
        "CPython manages memory mainly by reference counting: an object is freed as soon as "
        "its reference count drops to zero. A separate cyclic garbage collector, in the gc "
        "module, finds groups of objects that refer to each other and are otherwise unreachable."
    ),
    "bread.txt": (
        "Sourdough bread is leavened by a starter, a culture of wild yeast and lactic acid "
        "bacteria kept alive by regular feeding with flour and water. The bacteria give the "
        "bread its sour taste; the yeast makes the dough rise."
    ),
}
