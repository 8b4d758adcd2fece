/*
 * originalDst(fd): the destination a connection had before iptables REDIRECTed it to the sidecar,
 * read with getsockopt(SO_ORIGINAL_DST) (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6). Returns
 * { address, port } or throws an Error whose code is the errno name (ENOENT: not redirected).
 */
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/netfilter_ipv4.h>

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

static napi_value fail(napi_env env, const char *code, const char *message) {
  napi_throw_error(env, code, message);
  return NULL;
}

static napi_value original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    return fail(env, "EINVAL", "originalDst(fd): fd must be a non-negative integer");
  }
  struct sockaddr_storage local;
  socklen_t local_len = sizeof(local);
  if (getsockname(fd, (struct sockaddr *)&local, &local_len) != 0) return fail(env, "EBADF", strerror(errno));

  struct sockaddr_storage dst;
  socklen_t len = sizeof(dst);
  int rc = local.ss_family == AF_INET6
    ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &len)
    : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len);
  if (rc != 0) {
    int e = errno;
    return fail(env, e == ENOENT ? "ENOENT" : e == ENOPROTOOPT ? "ENOPROTOOPT" : "EIO", strerror(e));
  }
  char text[INET6_ADDRSTRLEN];
  uint16_t port;
  if (dst.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&dst;
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
    port = ntohs(a->sin6_port);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&dst;
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
    port = ntohs(a->sin_port);
  }
  napi_value result, address, port_value;
  napi_create_object(env, &result);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &address);
  napi_create_uint32(env, port, &port_value);
  napi_set_named_property(env, result, "address", address);
  napi_set_named_property(env, result, "port", port_value);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "originalDst", NAPI_AUTO_LENGTH, original_dst, NULL, &fn);
  napi_set_named_property(env, exports, "originalDst", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
