/*  nosym.c — loader test: a shared object that exports no nerve_module()
    (refused, NERVE_EABI: not a nerve module). */
int nerve_not_a_module(void);

int nerve_not_a_module(void)
{
    return 0;
}
