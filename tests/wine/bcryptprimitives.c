/* A stand-in bcryptprimitives.dll for Wine 8.0, which lacks ProcessPrng (Rust's std draws its
 * random numbers from it since Rust 1.78, so no Rust exe starts without it). It fills the
 * buffer from RtlGenRandom (advapi32's SystemFunction036), as Windows' own does from its
 * kernel generator. Built with the mingw-w64 that links the exe; used by tests/wine.sh only. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
