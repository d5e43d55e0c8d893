void ek_placeholder(void);
