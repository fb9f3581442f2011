// The one translation unit that compiles stb_image and stb_image_write for handgraph's
// own executables. Library users compile stb in a translation unit of their own.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#include <stb_image.h>
#include <stb_image_write.h>
