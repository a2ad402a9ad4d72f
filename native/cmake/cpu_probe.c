/* The build's CPU probe (G4R_CPU_ISA=auto): prints the instruction-set extensions this CPU has
 * and its OS enables, one line, space-separated, as the library's g4r_cpu_info reports them. */
#include <stdio.h>

#include "cpu_flags.h"

int main(void) {
    char flags[512], brand[49];
    g4r_read_cpu_flags(flags, sizeof flags, brand);
    printf("%s\n", flags);
    return 0;
}
