/* codecanvas-sandbox-agent skeleton: the init of a sandbox (see cc_sbx.h). */
int main(void) { return 1; }
