/* volk's implementation, compiled once into the library (Debian ships it as
 * a source file beside volk.h). */
#include <volk.c>
